"""The Baton and step functions the test-suite runs.

Declared at import time on a module-level ``Baton`` as users do; each test's
app gets its own database, Huey storage and ledger through ``init_app``.
"""

from __future__ import annotations

import time
from typing import Any

from flask_baton import Baton, Discard, Job, RateLimit, Snooze, WaitFor

from . import ledger

baton = Baton()
hook_calls: list[tuple[str, str, str]] = []


@baton.step()
def record_args(job: Job) -> dict[str, Any]:
    """Return its args and every dependency's result."""
    ledger.record(job)
    return {"step": job.step_name, "args": job.args, "inputs": job.results()}


@baton.step()
def return_none(job: Job) -> None:
    ledger.record(job)


@baton.step()
def add_one(job: Job) -> int:
    """Chain link: the previous link's value plus one (0 at the root)."""
    ledger.record(job)
    previous = job.results()
    return (next(iter(previous.values())) if previous else 0) + 1


@baton.step()
def sum_inputs(job: Job) -> int:
    ledger.record(job)
    return sum(value for value in job.results().values())


@baton.step()
def constant(job: Job) -> int:
    ledger.record(job)
    return int(job.args.get("value", 1))


@baton.step(retries=2, retry_delay=0.05)
def fail_until(job: Job) -> dict[str, int]:
    """Fail on the first ``job.args["failures"]`` runs, then succeed."""
    ledger.record(job)
    if job.attempt <= job.args["failures"]:
        raise RuntimeError(f"planned failure on attempt {job.attempt}")
    return {"succeeded_on": job.attempt}


@baton.step()
def always_fail(job: Job) -> None:
    ledger.record(job)
    raise ValueError("this step always fails")


@baton.step()
def discard_now(job: Job) -> None:
    ledger.record(job)
    raise Discard("not worth retrying")


@baton.step(retries=5)
def snooze_once(job: Job) -> Any:
    """Snooze on its first call (returning Snooze), then complete."""
    ledger.record(job)
    if not job.args.get("snoozed_at") and _ledger_count(job) == 1:
        return Snooze(0.05)
    return {"attempt": job.attempt}


@baton.step()
def unserialisable(job: Job) -> Any:
    ledger.record(job)
    return {"when": object()}


@baton.step()
def ask_for_stranger(job: Job) -> Any:
    ledger.record(job)
    return job.result("not_my_dep")


@baton.step()
def slow(job: Job) -> str:
    ledger.record(job)
    time.sleep(float(job.args.get("seconds", 0.2)))
    return "slow done"


@baton.step()
def fan_out_dynamically(job: Job) -> int:
    """Add one ``constant`` step per item and a ``sum_inputs`` fan-in over them."""
    ledger.record(job)
    names = []
    for index, value in enumerate(job.args["items"]):
        name = f"item:{index}"
        job.add_step(name, constant.new(value=value), deps=[job.step_name])
        names.append(name)
    job.add_step("total", sum_inputs.new(), deps=names)
    return len(names)


@baton.step()
def hooked(job: Job) -> None:
    ledger.record(job)


@hooked.on_dep_cancelled
def _hooked_cancelled(reason: str, job: Job) -> None:
    hook_calls.append(("cancelled", job.step_name, reason))


@hooked.on_dep_discarded
def _hooked_discarded(reason: str, job: Job) -> None:
    hook_calls.append(("discarded", job.step_name, reason))


def _ledger_count(job: Job) -> int:
    from pathlib import Path

    from flask import current_app

    return ledger.runs_per_step(Path(current_app.config["TEST_LEDGER"]), job.workflow_id)[job.step_name]


# -- core engine suite (test_outcomes, test_results, test_dynamic_steps, ...) --


@baton.step()
def core_echo(job: Job) -> Any:
    """Return ``job.args["value"]`` as the step's result, whatever JSON it is."""
    ledger.record(job)
    return job.args["value"]


@baton.step()
def core_fetch(job: Job) -> dict[str, Any]:
    """Diamond root: a document about ``job.args["topic"]``."""
    ledger.record(job)
    return {"body": f"notes on {job.args['topic']}", "sources": 3}


@baton.step()
def core_summarize(job: Job) -> dict[str, Any]:
    """Reads its input with ``job.result(dep)``."""
    ledger.record(job)
    return {"summary": job.result("fetch")["body"].upper()}


@baton.step()
def core_keywords(job: Job) -> dict[str, Any]:
    """Reads its input with ``results.get_result(job, dep)``."""
    from flask_baton import results

    ledger.record(job)
    return {"keywords": results.get_result(job, "fetch")["body"].split()}


@baton.step()
def core_credibility(job: Job) -> dict[str, Any]:
    """Reads its input with ``job.results()``."""
    ledger.record(job)
    return {"score": job.results()["fetch"]["sources"] / 4}


@baton.step()
def core_compile(job: Job) -> dict[str, Any]:
    """Fan-in: every input through ``results.get_all_results(job)``."""
    from flask_baton import results

    ledger.record(job)
    return {"deps": list(job.deps), "inputs": results.get_all_results(job)}


@baton.step(retries=5)
def core_snooze_raised_once(job: Job) -> dict[str, int]:
    """Raise Snooze on its first call, then complete reporting its attempt."""
    ledger.record(job)
    if _ledger_count(job) == 1:
        raise Snooze(0.05)
    return {"attempt": job.attempt}


@baton.step(retries=3)
def core_discard_despite_retries(job: Job) -> None:
    """Raise Discard although retries are left: it must not be retried."""
    ledger.record(job)
    raise Discard("the input is malformed, retrying cannot help")


@baton.step()
def core_add_steps(job: Job) -> int:
    """Add one ``constant`` step per ``job.args["add"]`` entry ``{name, value, deps}``."""
    ledger.record(job)
    for spec in job.args["add"]:
        job.add_step(spec["name"], constant.new(value=spec["value"]), deps=spec["deps"])
    return len(job.args["add"])


@baton.step(retries=1, retry_delay=0.05)
def core_add_then_fail_once(job: Job) -> int:
    """Add two ``constant`` steps, then fail the first run: its additions must not stick."""
    ledger.record(job)
    job.add_step("child:a", constant.new(value=1), deps=[job.step_name])
    job.add_step("child:b", constant.new(value=2), deps=[job.step_name])
    if job.attempt == 1:
        raise RuntimeError("failing after adding steps")
    return 2


# -- fault suite (test_faults: consumers killed, signalled, messages lost) -----


@baton.step()
def fault_step(job: Job) -> dict[str, Any]:
    """A step whose runs a fault test can see from outside its process.

    Notes each run in the ledger (with its pid), writes
    ``<marker_dir>/<step>.<run>.started`` once it is running, sleeps
    ``first_seconds`` on this step's first run and ``seconds`` on later ones,
    reads its inputs (``read_inputs``: ``"after"`` the sleep, the default, or
    ``"before"`` it) and returns a value determined by its args and inputs
    only, so a test can compute every expected result.
    """
    return _fault_run(job)


@baton.step(retries=3, retry_delay=0.05)
def fault_step_retrying(job: Job) -> dict[str, Any]:
    """``fault_step`` with retries, for runs whose own input reads may hit a dropped connection."""
    return _fault_run(job)


def _fault_run(job: Job) -> dict[str, Any]:
    import os
    from pathlib import Path

    ledger.record(job, pid=os.getpid())
    runs = _ledger_count(job)
    read_after = job.args.get("read_inputs", "after") == "after"
    inputs = None if read_after else job.results()
    marker_dir = job.args.get("marker_dir")
    if marker_dir:
        Path(marker_dir, f"{job.step_name}.{runs}.started").write_text(str(os.getpid()))
    seconds = job.args.get("seconds", 0)
    if runs == 1:
        seconds = job.args.get("first_seconds", seconds)
    time.sleep(float(seconds))
    if read_after:
        inputs = job.results()
    return {"step": job.step_name, "value": job.args.get("value"), "inputs": inputs}


@baton.step()
def fails_while_file_exists(job: Job) -> str:
    """Fails while ``job.args["path"]`` exists: a failure someone can fix."""
    from pathlib import Path

    ledger.record(job)
    if Path(job.args["path"]).exists():
        raise RuntimeError(f"blocked by {job.args['path']}")
    return "unblocked"


@baton.step()
def report_failed_deps(job: Job) -> dict[str, Any]:
    """Return which deps failed (tolerated) and every dep's result."""
    ledger.record(job)
    return {"failed": job.failed_deps(), "results": job.results()}


@baton.step()
def add_tolerant_step(job: Job) -> None:
    """Add ``report_failed_deps`` as "added", tolerating a discard of ``job.args["dep"]``."""
    from flask_baton import Dep

    ledger.record(job)
    job.add_step("added", report_failed_deps.new(), deps=[Dep(job.args["dep"], ignore_discarded=True)])


@baton.llm_step(retries=1, retry_delay=0)
def fake_llm(job: Job) -> dict[str, Any]:
    """A deterministic stand-in for a model call: records usage and context."""
    ledger.record(job)
    model = job.args.get("model", "gpt-4o-mini")
    job.record_usage(model=model, input_tokens=1000, output_tokens=500, cached_input_tokens=200)
    job.capture_context(
        messages=[{"role": "user", "content": job.args.get("prompt", "hello")}],
        response={"text": "x" * int(job.args.get("size", 10))},
    )
    if job.attempt <= int(job.args.get("failures", 0)):
        raise RuntimeError("provider answered 503")
    if model in job.args.get("refusing", []):
        raise Discard(f"{model} refused")
    return {"model": model, "answer": f"answer from {model}"}


@baton.llm_step(retries=0, timeout=0.3)
def hanging_llm(job: Job) -> str:
    ledger.record(job)
    time.sleep(3)
    return "too late"


@baton.step()
def synthesise(job: Job) -> dict[str, Any]:
    from flask_baton.multi_model import model_results

    ledger.record(job)
    return model_results(job)


@baton.llm_step(retries=0)
def bad_usage(job: Job) -> None:
    """Records one good call, then reports a negative token count."""
    ledger.record(job)
    job.record_usage(model="gpt-4o", input_tokens=10, output_tokens=5)
    job.record_usage(model="gpt-4o", input_tokens=-1, output_tokens=5)


@baton.step(retries=0)
def record_responses(job: Job) -> list[float | None]:
    """Record the SDK responses named in ``job.args["responses"]`` (tests/sdk_responses.py); their costs.

    A name ending in ``:dict`` records the response's ``model_dump()``;
    ``job.args["model"]``, when given, is passed as ``model=``.
    """
    from .sdk_responses import RESPONSES

    ledger.record(job)
    costs = []
    for name in job.args["responses"]:
        response = RESPONSES[name.removesuffix(":dict")]()
        if name.endswith(":dict"):
            response = response.model_dump()
        costs.append(job.record_usage(response, model=job.args.get("model")))
    return costs


# -- dashboard suite (test_dashboard*: a test decides when a step completes) ---


@baton.step()
def wait_for_file(job: Job) -> Any:
    """Block until ``job.args["path"]`` exists, then return ``job.args.get("value")``.

    Holds its consumer thread while waiting (polling every 5 ms), so the step
    stays ``executing`` until the test creates the file; gives up with an
    error after ``job.args.get("timeout", 30)`` seconds.
    """
    _wait_for_path(job.args["path"], float(job.args.get("timeout", 30)))
    ledger.record(job)
    return job.args.get("value")


def _wait_for_path(name: str, timeout: float) -> None:
    """Poll every 5 ms until the file ``name`` exists; TimeoutError after ``timeout`` seconds."""
    from pathlib import Path

    path = Path(name)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.005)


@baton.step()
def stream_words(job: Job) -> str:
    """``job.stream`` each of ``job.args["words"]`` with a space; return the whole text.

    ``gates`` (``{"<index>": path}``): before streaming word ``index``, wait
    for the file ``path`` to exist (a stream caught mid-way).
    """
    ledger.record(job)
    words = [f"{word} " for word in job.args["words"]]
    gates = job.args.get("gates", {})
    for index, word in enumerate(words):
        if str(index) in gates:
            _wait_for_path(gates[str(index)], 30)
        job.stream(word)
    return "".join(words)


@baton.step()
def raise_message(job: Job) -> None:
    """Fail with ``job.args["message"]`` as the exception's text."""
    ledger.record(job)
    raise RuntimeError(job.args["message"])


@baton.step()
def fetch_web(job: Job) -> Any:
    """Docs demo (dashboard screenshots): "fetch" ``job.args["value"]``."""
    return job.args["value"]


@baton.step()
def llm_complete(job: Job) -> Any:
    """Docs demo (dashboard screenshots): "answer" ``job.args["value"]``."""
    return job.args["value"]


# -- workflow control suite (test_status, test_explain, test_retry_workflow, ...) --


@baton.step(retries=1, retry_delay=3600)
def fail_then_wait_an_hour(job: Job) -> None:
    """Fail its first run; its retry is due an hour later, so it stays ``retryable``."""
    ledger.record(job)
    raise RuntimeError("first run fails")


@baton.step()
def snooze_an_hour(job: Job) -> Snooze:
    """Snooze for an hour: the step stays ``snoozed`` for the whole test."""
    ledger.record(job)
    return Snooze(3600)


# -- attempt history suite (test_attempts, the step page in the browser) ---------


@baton.step(retries=3, retry_delay=0.05)
def chat_until(job: Job) -> dict[str, Any]:
    """A tool-using chat call that fails its first ``job.args["failures"]`` runs.

    Each run captures its context (``BATON_DEBUG_CAPTURE``): a system prompt,
    the user's question (``job.args["question"]``), an assistant tool call and
    its result, then the response, which names the attempt.
    """
    ledger.record(job)
    messages = [
        {"role": "system", "content": "You answer with one word."},
        {"role": "user", "content": [{"type": "text", "text": job.args.get("question", "Weather in Paris?")}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
    ]
    response = {
        "model": "gpt-4o-mini",
        "choices": [
            {
                "message": {"role": "assistant", "content": f"Sunny (attempt {job.attempt})"},
                "finish_reason": "stop",
            }
        ],
    }
    job.capture_context(messages=messages, response=response)
    if job.attempt <= int(job.args.get("failures", 0)):
        raise ConnectionError(f"provider unreachable on attempt {job.attempt}")
    return {"answer": "sunny", "attempt": job.attempt}


class RateLimitError(Exception):
    """What an LLM provider's SDK raises on HTTP 429 (docs demo)."""

    __module__ = "openai"


@baton.step(retries=3, retry_delay=0.05)
def summarize_sources(job: Job) -> dict[str, Any]:
    """Docs demo (step page screenshot): a tool-using chat call rate-limited on its first runs."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a research assistant. Summarize in two sentences; cite sources as [n]."},
        {"role": "user", "content": f"Summarize the state of {job.args['topic']}."},
    ]
    if job.attempt <= int(job.args.get("rate_limited", 0)):
        _ask_provider(job.attempt)
    call = {
        "id": "call_7Qm",
        "type": "function",
        "function": {"name": "search_papers", "arguments": '{"query": "logical qubits 2025", "limit": 2}'},
    }
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {
            "role": "tool",
            "tool_call_id": "call_7Qm",
            "content": '[{"n": 1, "title": "Logical quantum processor based on reconfigurable atom arrays"}, '
            '{"n": 2, "title": "Quantum error correction below the surface code threshold"}]',
        },
    ]
    answer = (
        "Neutral-atom arrays now run 48 logical qubits [1], and surface-code memories have crossed "
        "the break-even threshold, with errors falling as the code grows [2]."
    )
    job.record_usage(model="gpt-4o", input_tokens=5210, output_tokens=410)
    job.capture_context(
        messages=messages,
        response={
            "model": "gpt-4o",
            "choices": [{"message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5210, "completion_tokens": 410},
        },
    )
    return {"summary": answer}


def _ask_provider(attempt: int) -> None:
    raise RateLimitError(
        f"Error code: 429 - Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000, Used 29{attempt}41. "
        "Please try again in 1.2s."
    )


# -- spend caps (test_budget) -----------------------------------------------------


@baton.step()
def spend(job: Job) -> str:
    """Record one call of ``job.args["dollars"]`` output tokens of model ``dollar`` (priced $1 a token).

    With ``job.args["gate"]``, then wait for that file to exist (at most 30 s):
    the step is still running while a test raises or reaches a cap.
    """
    from pathlib import Path

    ledger.record(job)
    job.record_usage(model="dollar", input_tokens=0, output_tokens=int(job.args.get("dollars", 1)))
    gate = job.args.get("gate")
    deadline = time.monotonic() + 30
    while gate is not None and not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    return job.step_name


@baton.step()
def await_approval(job: Job) -> Any:
    """Wait for the signal ``approval`` (``job.args``: timeout, on_timeout), then return what it read."""
    ledger.record(job)
    decision = job.signal("approval")
    if decision is None and not job.timed_out("approval"):
        return WaitFor(
            "approval",
            timeout=job.args.get("timeout", 3600),
            on_timeout=job.args.get("on_timeout", "discard"),
            approval=True,
        )
    return {"decision": decision, "timed_out": job.timed_out("approval")}


@baton.step()
def wait_without_reading(job: Job) -> Any:
    """Returns ``WaitFor("reply")`` whatever it was sent: waiting twice is refused."""
    ledger.record(job)
    return WaitFor("reply", timeout=3600)


# -- rate limits suite (test_rate_limits: BATON_RATE_LIMITS against real consumers) --


def _key_of(job: Job) -> str:
    return str(job.args["key"])


def _estimate(job: Job) -> int:
    return int(job.args.get("estimate", 0))


@baton.llm_step(rate_limit=_key_of, tokens=_estimate, retries=0, queue="default")
def paced_call(job: Job) -> dict[str, Any]:
    """A model call under ``job.args["key"]``: notes when its call was counted, and reports ``used`` tokens.

    With ``hold_dir``, it runs until ``<hold_dir>/release`` exists, noting
    ``<hold_dir>/<step>.running`` meanwhile (a concurrency test counts them),
    then its span (start and end times) in a ``.span`` file.
    With ``provider_says_wait``, its first run raises a provider-shaped ``RateLimitError``.
    """
    import os
    from pathlib import Path

    grant = job.rate_limit
    assert grant is not None
    started = time.time()
    ledger.record(job, key=grant.key, granted_at=grant.at, started_at=started, tokens=grant.tokens, pid=os.getpid())
    if job.args.get("provider_says_wait") and _ledger_count(job) == 1:
        raise _ProviderRateLimitError(job.args["provider_says_wait"])
    hold = job.args.get("hold_dir")
    if hold:
        running = Path(hold, f"{job.step_name}.running")
        running.write_text(str(os.getpid()))
        while not Path(hold, "release").exists():
            time.sleep(0.01)
        running.unlink()
        Path(hold, f"{job.step_name}.{job.attempt}.{os.getpid()}.span").write_text(f"{started} {time.time()}")
    used = int(job.args.get("used", 0))
    if used:
        job.record_usage(model="gpt-4o-mini", input_tokens=used // 2, output_tokens=used - used // 2)
    return {"key": grant.key}


class _ProviderRateLimitError(Exception):
    """Shaped like ``openai.RateLimitError``: a 429 whose response carries ``retry-after``."""

    def __init__(self, seconds: float) -> None:
        from types import SimpleNamespace

        super().__init__("Error code: 429 - rate limit reached")
        self.response = SimpleNamespace(headers={"retry-after": str(seconds)})


_ProviderRateLimitError.__name__ = "RateLimitError"


@baton.step(rate_limit=RateLimit("declared-on-step", rpm=100, concurrency=1))
def declared_limit_call(job: Job) -> str:
    """A step that declares its key's limits itself (no ``BATON_RATE_LIMITS`` needed)."""
    ledger.record(job)
    assert job.rate_limit is not None
    return job.rate_limit.key
