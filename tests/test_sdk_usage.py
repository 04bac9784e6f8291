"""``job.record_usage(response)``: an SDK's response read by shape, stored, priced and totalled.

The responses are real objects of the installed SDKs (tests/sdk_responses.py),
built offline from their own classes; the steps that record them run on a
real consumer on both backends.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from flask_baton import ArgumentError, Job, Workflow
from flask_baton.pricing import DEFAULT_PRICING, cost_usd, prices_for
from flask_baton.records import ModelCall
from flask_baton.sdk_usage import ResponseUsage, read_usage
from flask_baton.store import migrations
from flask_baton.store.tables import step_stats
from flask_baton.streaming import StepStream

from .apps import create_app
from .conftest import sqlite_settings
from .sdk_responses import COST, READ, RESPONSES, openai_chat
from .steps import baton, record_responses
from .support import ThreadConsumer, make_version, wait_finished

SDKS = list(READ)


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"BATON_DASHBOARD_AUTH": lambda: True}


# -- reading a response ---------------------------------------------------------


@pytest.mark.parametrize("name", SDKS)
@pytest.mark.parametrize("form", ["object", "model_dump"])
def test_each_sdks_response_reads_as_disjoint_counts(name: str, form: str) -> None:
    response = RESPONSES[name]()
    assert read_usage(response if form == "object" else response.model_dump()) == READ[name]


def test_openai_cache_writes_and_reasoning_are_taken_out_of_the_prompt_and_completion() -> None:
    response = openai_chat(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 50,
            "total_tokens": 1050,
            "prompt_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 300},
            "completion_tokens_details": {"reasoning_tokens": 20},
        }
    )
    assert read_usage(response) == ResponseUsage(
        "o4-mini-2025-04-16", 100, 30, cached_input_tokens=600, reasoning_tokens=20, cache_write_tokens=300
    )


def test_a_chat_completion_without_details_counts_every_token_as_plain() -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    assert read_usage(openai_chat(usage)) == ResponseUsage("o4-mini-2025-04-16", 12, 3)


@pytest.mark.parametrize(
    "response",
    [
        RESPONSES["no-usage"](),
        RESPONSES["no-usage"]().model_dump(),
        {**RESPONSES["anthropic"]().model_dump(), "usage": None},
        RESPONSES["gemini"]().model_copy(update={"usage_metadata": None}),
    ],
    ids=["openai-object", "openai-dict", "anthropic-dict", "gemini-object"],
)
def test_a_response_without_usage_reads_as_none(response: Any) -> None:
    assert read_usage(response) is None


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("Paris", "str 'Paris'"),
        (("gpt-4o", 10, 5), "tuple ('gpt-4o', 10, 5)"),
        ({"model": "gpt-4o", "tokens": 10}, "dict {'model': 'gpt-4o', 'tokens': 10}"),
        (None, "NoneType None"),
    ],
)
def test_what_is_no_response_is_refused_naming_what_was_passed(value: Any, named: str) -> None:
    with pytest.raises(ArgumentError, match="takes an OpenAI, Anthropic or Google GenAI response") as raised:
        read_usage(value)
    assert str(raised.value).endswith(f"got {named}")


def test_a_cached_count_larger_than_the_prompt_is_refused() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 1,
        "total_tokens": 11,
        "prompt_tokens_details": {"cached_tokens": 11},
    }
    with pytest.raises(ArgumentError, match=r"prompt_tokens \(10\) is smaller than the part of it reported \(11\)"):
        read_usage(openai_chat(usage))


def test_a_negative_count_is_refused_naming_its_field() -> None:
    response = RESPONSES["gemini"]().model_dump()
    response["usage_metadata"]["thoughts_token_count"] = -1
    with pytest.raises(ArgumentError, match="usage_metadata|thoughts_token_count must be a whole number >= 0"):
        read_usage(response)


def test_flask_baton_never_imports_an_sdk() -> None:
    """Every module of the package imported, and none of the SDKs among what Python loaded."""
    script = (
        "import importlib, pkgutil, sys, flask_baton\n"
        "for m in pkgutil.walk_packages(flask_baton.__path__, 'flask_baton.'): importlib.import_module(m.name)\n"
        "sdks = ('openai', 'anthropic', 'google.genai')\n"
        "print(sorted(n for n in sys.modules if any(n == s or n.startswith(s + '.') for s in sdks)))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"


# -- the job's two forms -------------------------------------------------------


def job_recording_into(calls: list[ModelCall]) -> Job:
    """A ``Job`` whose recorded calls land in ``calls`` (the argument checks, apart from any store)."""

    def record(call: ModelCall) -> float:
        calls.append(call)
        return 0.0

    return Job(
        id="n1",
        workflow_id="w1",
        workflow_label="brief (w1)",
        step_name="ask",
        args={},
        attempt=1,
        load_inputs=dict,
        load_step_names=set,
        record_usage=record,
        capture_context=lambda messages, response: False,
        stream=StepStream(workflow_id="w1", step_name="ask", attempt=1, send=lambda events: None, hold=0),
        load_signals=dict,
    )


def test_the_keyword_form_records_as_before_and_takes_the_new_counts() -> None:
    calls: list[ModelCall] = []
    job = job_recording_into(calls)
    job.record_usage(model="gpt-4o", input_tokens=10, output_tokens=5, cached_input_tokens=2, latency=1.5)
    job.record_usage(
        model="o4-mini", input_tokens=1, output_tokens=2, reasoning_tokens=3, cache_write_tokens=4, latency=0
    )
    assert calls == [ModelCall("gpt-4o", 10, 5, 2, 1.5), ModelCall("o4-mini", 1, 2, 0, 0, 3, 4)]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((openai_chat(),), {"input_tokens": 10}, "takes a response or token counts, not both"),
        ((), {"model": "gpt-4o", "input_tokens": 10}, "needs a response, or model=, input_tokens= and output_tokens="),
        (({"usage": {"input_tokens": 1, "output_tokens": 2}},), {}, "the dict passed to record_usage.. names no model"),
    ],
)
def test_record_usage_refuses_what_it_cannot_read_and_records_nothing(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    calls: list[ModelCall] = []
    with pytest.raises(ArgumentError, match=message):
        job_recording_into(calls).record_usage(*args, **kwargs)
    assert calls == []


# -- pricing --------------------------------------------------------------------


def test_reasoning_and_cache_writes_have_prices_of_their_own_with_defaults() -> None:
    priced = {"m": {"input": 2.0, "output": 10.0, "cached_input": 0.5, "reasoning": 20.0, "cache_write": 3.0}}
    plain = {"m": {"input": 2.0, "output": 10.0}}
    per_million = 1_000_000
    assert cost_usd(priced, "m", 0, 0, 0, reasoning_tokens=per_million) == 20.0
    assert cost_usd(priced, "m", 0, 0, 0, cache_write_tokens=per_million) == 3.0
    assert cost_usd(plain, "m", 0, 0, 0, reasoning_tokens=per_million) == 10.0  # the output price
    assert cost_usd(plain, "m", 0, 0, 0, cache_write_tokens=per_million) == 2.5  # input x 1.25
    assert cost_usd(plain, "m", 1, 2, 3) == (1 * 2 + 2 * 10 + 3 * 2) / per_million  # unchanged without them


def test_a_dated_snapshot_is_priced_as_its_model_and_nothing_else_is_guessed() -> None:
    assert prices_for(DEFAULT_PRICING, "gpt-4o-mini-2024-07-18") is DEFAULT_PRICING["gpt-4o-mini"]
    assert prices_for(DEFAULT_PRICING, "claude-3-5-haiku-20241022") is DEFAULT_PRICING["claude-3-5-haiku"]
    assert prices_for(DEFAULT_PRICING, "gemini-1.5-flash-002") is DEFAULT_PRICING["gemini-1.5-flash"]
    assert prices_for(DEFAULT_PRICING, "gemini-1.5-flash-8b") is None  # another model, not a snapshot
    table = {"gpt-4o": {"input": 1.0, "output": 1.0}, "gpt-4o-2024-05-13": {"input": 5.0, "output": 15.0}}
    assert prices_for(table, "gpt-4o-2024-05-13") is table["gpt-4o-2024-05-13"]  # its own entry first


def test_a_cost_callable_gets_the_new_counts_only_if_it_takes_them() -> None:
    def before(model: str, inputs: int, outputs: int, cached: int) -> float:
        return float(inputs * 1000 + outputs)

    def after(
        model: str, inputs: int, outputs: int, cached: int, *, reasoning_tokens: int, cache_write_tokens: int
    ) -> float:
        return float(reasoning_tokens * 1000 + cache_write_tokens)

    # A callable of four arguments sees reasoning in the output, cache writes in the input, as it did.
    assert cost_usd(before, "m", 1, 2, 0, reasoning_tokens=3, cache_write_tokens=4) == 5 * 1000 + 5
    assert cost_usd(after, "m", 1, 2, 0, reasoning_tokens=3, cache_write_tokens=4) == 3004
    assert cost_usd(lambda *a, **counts: float(len(counts)), "m", 1, 2, 0) == 2


def test_reasoning_and_cache_write_prices_are_accepted_in_the_config(tmp_path: Any) -> None:
    prices = {"m": {"input": 1, "output": 2, "cached_input": 0.1, "reasoning": 3, "cache_write": 1.25}}
    app = create_app({**sqlite_settings(tmp_path, tmp_path / "ledger"), "BATON_PRICING": prices})
    assert app.extensions["baton"].config.pricing == prices


# -- through a real consumer, on both backends ----------------------------------


def stored(app: Flask, workflow_id: str) -> dict[str, tuple[Any, ...]]:
    """Each stored call by model: its counts, in ``ResponseUsage``'s order, and its cost."""
    c = step_stats.c
    columns = (c.input_tokens, c.output_tokens, c.cached_input_tokens, c.reasoning_tokens, c.cache_write_tokens)
    with app.extensions["baton"].engine.connect() as conn:
        rows = conn.execute(select(c.step_name, c.model, *columns, c.cost_usd).where(c.workflow_id == workflow_id))
        return {f"{row[0]} {row[1]}": tuple(row[2:]) for row in rows}


def expected_row(name: str) -> tuple[Any, ...]:
    read = READ[name]
    counts = (read.input_tokens, read.output_tokens, read.cached_input_tokens, read.reasoning_tokens)
    return (*counts, read.cache_write_tokens, pytest.approx(COST[name]))


def test_every_sdks_response_and_its_dict_form_are_stored_with_their_counts_and_cost(
    app: Flask, consumer: ThreadConsumer
) -> None:
    wf = (
        Workflow("sdks")
        .add("objects", record_responses.new(responses=SDKS))
        .add("dicts", record_responses.new(responses=[f"{name}:dict" for name in SDKS]), deps=["objects"])
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "completed"

    rows = stored(app, wf.workflow_id)
    for step in ("objects", "dicts"):
        for name in SDKS:
            assert rows[f"{step} {READ[name].model}"] == expected_row(name), (step, name)
    results = {s.step_name: s.result for s in baton.query.get_workflow_jobs(wf.workflow_id)}
    assert results["objects"] == results["dicts"] == [pytest.approx(COST[name]) for name in SDKS]

    total = baton.stats.for_workflow(wf.workflow_id)
    reads = READ.values()
    assert (total.calls, total.reasoning_tokens, total.cache_write_tokens) == (
        8,
        2 * sum(r.reasoning_tokens for r in reads),
        2 * sum(r.cache_write_tokens for r in reads),
    )
    assert total.cost_usd == pytest.approx(2 * sum(COST.values()))
    assert total.total_tokens == 2 * sum(
        r.input_tokens + r.cache_write_tokens + r.output_tokens + r.reasoning_tokens for r in reads
    )
    assert baton.stats.by_step(wf.workflow_id)["dicts"].reasoning_tokens == sum(r.reasoning_tokens for r in reads)
    assert baton.stats.by_model()["claude-sonnet-4-20250514"].cache_write_tokens == 2 * 2000

    page = app.test_client().get(f"/baton/workflows/{wf.workflow_id}/steps/objects").get_data(as_text=True)
    assert "1,566 input + 11,584 cached + 2,000 cache-write + 558 output + 1,142 reasoning tokens in 4 call(s)" in page


def test_model_given_names_and_prices_the_call_instead_of_the_responses(app: Flask, consumer: ThreadConsumer) -> None:
    wf = Workflow("renamed").add("ask", record_responses.new(responses=["openai-chat"], model="gpt-4o"))
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "completed"
    gpt_4o = DEFAULT_PRICING["gpt-4o"]
    cost = (176 * gpt_4o["input"] + 1024 * gpt_4o["cached_input"] + (108 + 192) * gpt_4o["output"]) / 1e6
    assert stored(app, wf.workflow_id) == {"ask gpt-4o": (176, 108, 1024, 192, 0, pytest.approx(cost))}


def test_a_response_without_usage_warns_naming_the_step_and_loses_nothing(
    app: Flask, consumer: ThreadConsumer, caplog: pytest.LogCaptureFixture
) -> None:
    wf = Workflow("partly-counted").add("ask", record_responses.new(responses=["gemini", "no-usage", "anthropic"]))
    with caplog.at_level(logging.WARNING, logger="flask_baton"):
        wf.insert()
        assert wait_finished(app, wf.workflow_id).state == "completed"
    (step,) = baton.query.get_workflow_jobs(wf.workflow_id)
    assert step.result == [pytest.approx(COST["gemini"]), None, pytest.approx(COST["anthropic"])]
    assert stored(app, wf.workflow_id) == {
        "ask gemini-2.5-flash": expected_row("gemini"),
        "ask claude-sonnet-4-20250514": expected_row("anthropic"),
    }
    warnings = [r.getMessage() for r in caplog.records if "carries no usage" in r.getMessage()]
    assert warnings == [
        f"step 'ask' of partly-counted ({wf.workflow_id}): the ChatCompletion passed to record_usage() "
        "carries no usage; nothing recorded for this call"
    ]


def test_a_value_of_no_known_api_fails_the_step_naming_it_and_keeps_earlier_usage(
    app: Flask, consumer: ThreadConsumer
) -> None:
    wf = Workflow("not-a-response").add("ask", record_responses.new(responses=["gemini", "a-tuple"]))
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"
    (step,) = baton.query.get_workflow_jobs(wf.workflow_id)
    assert "ArgumentError: record_usage() takes an OpenAI, Anthropic or Google GenAI response" in step.error
    assert "got tuple ('gpt-4o', 10, 5)" in step.error
    assert stored(app, wf.workflow_id) == {"ask gemini-2.5-flash": expected_row("gemini")}


def test_a_version_5_database_keeps_its_usage_and_counts_the_new_tokens_after_upgrading(
    app: Flask, consumer: ThreadConsumer
) -> None:
    before = Workflow("before-upgrade").add("ask", record_responses.new(responses=["openai-responses"]))
    before.insert()
    assert wait_finished(app, before.workflow_id).state == "completed"
    make_version(app, 5)

    assert baton.create_schema() == (5, migrations.SCHEMA_VERSION)
    assert stored(app, before.workflow_id) == {"ask gpt-4.1-mini-2025-04-14": expected_row("openai-responses")}
    after = Workflow("after-upgrade").add("ask", record_responses.new(responses=["anthropic"]))
    after.insert()
    assert wait_finished(app, after.workflow_id).state == "completed"
    assert stored(app, after.workflow_id) == {"ask claude-sonnet-4-20250514": expected_row("anthropic")}
