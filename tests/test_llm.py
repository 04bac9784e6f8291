"""LLM steps: cost arithmetic, usage stats, context capture, timeouts, jitter, multi-model fan-out."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from flask_baton import ConfigError, DuplicateStepError, Workflow, WorkflowError
from flask_baton.multi_model import fan_out
from flask_baton.pricing import DEFAULT_PRICING, cost_usd
from flask_baton.steps import Step
from flask_baton.store.tables import debug_logs, step_stats

from . import ledger
from .apps import create_app
from .conftest import sqlite_settings
from .steps import bad_usage, baton, constant, fake_llm, hanging_llm, synthesise
from .support import Deliveries, ThreadConsumer, step_states, wait_finished

PRICES = {"m": {"input": 3.0, "cached_input": 0.5, "output": 15.0}, "plain": {"input": 1.0, "output": 2.0}}


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"BATON_PRICING": PRICES | DEFAULT_PRICING}


@pytest.fixture
def consumers(app: Flask) -> Any:
    """A default-queue and an ``llm``-queue consumer, as production runs them."""
    with ThreadConsumer(app, workers=2), ThreadConsumer(app, workers=4, queue="llm") as llm:
        yield llm


def test_cost_is_exact_for_a_known_price_table() -> None:
    assert cost_usd(PRICES, "m", 1_000_000, 1_000_000, 1_000_000) == 18.5
    assert cost_usd(PRICES, "m", 1000, 500, 200) == pytest.approx((1000 * 3 + 200 * 0.5 + 500 * 15) / 1e6, abs=0)
    assert cost_usd(PRICES, "plain", 0, 0, 1_000_000) == 1.0  # cached falls back to the input price
    assert cost_usd(lambda model, i, o, c: i + o + c, "any", 1, 2, 3) == 6


def test_unknown_model_costs_nothing_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_baton"):
        assert cost_usd(PRICES, "mystery-model-7", 10, 10, 0) is None
        assert cost_usd(PRICES, "mystery-model-7", 10, 10, 0) is None
    assert [r.getMessage() for r in caplog.records].count(
        "no price for model 'mystery-model-7' in BATON_PRICING: its usage is recorded without a cost"
    ) == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("cheap", "must be a mapping of model -> prices, or a callable"),
        ({"m": {"input": 1}}, r"BATON_PRICING\['m'\] must be a mapping with 'input' and 'output'"),
        ({"m": {"input": 1, "output": -2}}, r"BATON_PRICING\['m'\]\['output'\] must be a number >= 0"),
        ({"m": {"input": 1, "output": 2, "thinking": 3}}, r"BATON_PRICING\['m'\] must be a mapping"),
    ],
)
def test_bad_pricing_config_is_refused_naming_the_model(tmp_path: Path, value: Any, message: str) -> None:
    settings = sqlite_settings(tmp_path, tmp_path / "ledger")
    with pytest.raises(ConfigError, match=message):
        create_app({**settings, "BATON_PRICING": value})


def test_full_jitter_stays_within_the_capped_exponential_bound() -> None:
    step = Step(
        lambda job: None,
        name="j",
        retries=5,
        retry_delay=1.0,
        retry_backoff=2.0,
        retry_jitter=True,
        max_retry_delay=5.0,
    )
    for attempt, bound in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (6, 5.0)]:
        samples = [step.delay_before(attempt) for _ in range(400)]
        assert all(0.0 <= delay <= bound for delay in samples)
        assert max(samples) > bound * 0.8 and min(samples) < bound * 0.2  # spread over the range
    fixed = Step(lambda job: None, name="f", retry_delay=1.0, retry_backoff=2.0)
    assert [fixed.delay_before(a) for a in (1, 2, 3)] == [1.0, 2.0, 4.0]


def test_llm_steps_default_to_the_llm_queue_with_backoff_and_the_config_timeout() -> None:
    assert (fake_llm.queue, fake_llm.retry_jitter, fake_llm.llm) == ("llm", True, True)
    assert fake_llm.timeout_for(120.0) == 120.0
    assert hanging_llm.timeout_for(120.0) == 0.3
    assert constant.timeout_for(120.0) is None


def test_usage_of_every_attempt_is_kept_and_totalled(app: Flask, consumers: ThreadConsumer) -> None:
    wf = (
        Workflow("usage")
        .add("flaky", fake_llm.new(model="m", failures=1))
        .add("other", fake_llm.new(model="plain"), deps=["flaky"])
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "completed"
    per_call = (1000 * 3 + 200 * 0.5 + 500 * 15) / 1e6
    by_step = baton.stats.by_step(wf.workflow_id)
    assert (by_step["flaky"].calls, by_step["flaky"].input_tokens) == (2, 2000)  # both attempts
    assert by_step["flaky"].cost_usd == pytest.approx(2 * per_call)
    assert by_step["other"].cost_usd == pytest.approx((1000 + 200 + 500 * 2) / 1e6)
    total = baton.stats.for_workflow(wf.workflow_id)
    assert (total.calls, total.output_tokens, total.cached_input_tokens) == (3, 1500, 600)
    assert set(baton.stats.by_model()) == {"m", "plain"}
    assert baton.stats.total(since=time.time() + 60).calls == 0
    assert baton.stats.total().calls == 3
    with app.extensions["baton"].engine.connect() as conn:
        attempts = conn.execute(select(step_stats.c.attempt).where(step_stats.c.step_name == "flaky")).scalars().all()
    assert sorted(attempts) == [1, 2]


def test_every_cost_total_is_none_where_no_call_had_a_price(app: Flask, consumers: ThreadConsumer) -> None:
    """``baton.stats``, ``baton.status`` and the dashboard's per-step usage add up costs by one rule."""
    wf = (
        Workflow("partly-priced")
        .add("priced", fake_llm.new(model="plain"))
        .add("unpriced", fake_llm.new(model="mystery-model-7"))
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "completed"
    priced = (1000 + 200 + 500 * 2) / 1e6
    by_step = baton.stats.by_step(wf.workflow_id)
    assert (by_step["unpriced"].calls, by_step["unpriced"].cost_usd, by_step["unpriced"].unpriced_calls) == (1, None, 1)
    assert by_step["priced"].cost_usd == pytest.approx(priced)
    assert baton.query.step_usage(wf.workflow_id) == by_step
    assert baton.stats.by_model()["mystery-model-7"].cost_usd is None
    total = baton.stats.for_workflow(wf.workflow_id)
    assert (total.calls, total.cost_usd, total.unpriced_calls) == (2, pytest.approx(priced), 1)
    assert baton.status(wf.workflow_id).cost_usd == pytest.approx(priced)
    assert baton.query.workflow_costs([wf.workflow_id]) == {wf.workflow_id: pytest.approx(priced)}
    nothing = baton.stats.total(since=time.time() + 60)
    assert (nothing.calls, nothing.cost_usd) == (0, None)


def test_a_stored_result_is_not_recomputed_so_no_usage_is_recorded_again(app: Flask, consumers: ThreadConsumer) -> None:
    wf = Workflow("cached").add("once", fake_llm.new(model="m"))
    node = wf.insert()[0]
    wait_finished(app, wf.workflow_id)
    with Deliveries(app, "llm") as deliveries:
        app.extensions["baton"].queues.enqueue(node.id, "llm", None)
        deliveries.wait(node.id, 1)
    assert baton.stats.for_workflow(wf.workflow_id).calls == 1


def test_bad_token_counts_fail_the_step_clearly_and_keep_earlier_usage(app: Flask, consumers: ThreadConsumer) -> None:
    wf = Workflow("bad-usage").add("bad", bad_usage.new())
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"
    (step,) = app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)
    assert "ArgumentError: input_tokens must be a whole number >= 0, got -1" in step.error
    assert baton.stats.for_workflow(wf.workflow_id).calls == 1


def _captured(app: Flask) -> list[Any]:
    with app.extensions["baton"].engine.connect() as conn:
        return conn.execute(select(debug_logs.c.messages, debug_logs.c.response, debug_logs.c.truncated)).all()


def test_context_is_not_captured_when_capture_is_off(app: Flask, consumers: ThreadConsumer) -> None:
    wf = Workflow("no-capture").add("call", fake_llm.new(model="m"))
    wf.insert()
    wait_finished(app, wf.workflow_id)
    assert _captured(app) == []


@pytest.mark.parametrize("app_overrides", [{"BATON_DEBUG_CAPTURE": True, "BATON_DEBUG_CAPTURE_MAX_BYTES": 1000}])
def test_context_is_captured_and_capped_when_capture_is_on(app: Flask, consumers: ThreadConsumer) -> None:
    wf = (
        Workflow("capture")
        .add("small", fake_llm.new(model="m", prompt="short", size=10))
        .add("large", fake_llm.new(model="m", size=5000))
    )
    wf.insert()
    wait_finished(app, wf.workflow_id)
    rows = {row.truncated: row for row in _captured(app)}
    assert '"content": "short"' in rows[False].messages and rows[False].response == '{"text": "' + "x" * 10 + '"}'
    assert len(rows[True].response.encode()) == 1000


def test_timeout_is_enforced_by_a_real_consumer(app: Flask, consumers: ThreadConsumer) -> None:
    wf = Workflow("timeout").add("hang", hanging_llm.new())
    wf.insert()
    started = time.monotonic()
    assert wait_finished(app, wf.workflow_id).state == "failed"
    assert time.monotonic() - started < 2.5  # not the 3 s the function sleeps
    (step,) = app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)
    assert "StepTimeout: step 'hang' ran longer than its timeout of 0.3s" in step.error


def test_llm_steps_wait_for_an_llm_consumer(app: Flask) -> None:
    wf = Workflow("queues").add("call", fake_llm.new(model="m"))
    wf.insert()
    with ThreadConsumer(app, workers=2):
        later = Workflow("default-queue").add("plain", constant.new())
        later.insert()
        wait_finished(app, later.workflow_id)  # the default consumer was busy and is idle again
        assert step_states(app, wf.workflow_id) == {"call": "available"}
    with ThreadConsumer(app, workers=2, queue="llm"):
        assert wait_finished(app, wf.workflow_id).state == "completed"


def test_fan_out_names_one_step_per_model_and_synthesis_gets_results_by_model(
    app: Flask, consumers: ThreadConsumer, ledger_path: Path
) -> None:
    wf = Workflow("models").add("fetch", constant.new(value=1))
    added = fan_out(
        wf, "analysis", fake_llm, models=["m", "plain", "gpt-4o"], deps=["fetch"], synthesize=("brief", synthesise)
    )
    assert added == ["analysis:m", "analysis:plain", "analysis:gpt-4o", "brief"]
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "completed"
    steps = {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)}
    assert steps["analysis:plain"].deps == ("fetch",)
    assert steps["brief"].result == {m: {"model": m, "answer": f"answer from {m}"} for m in ("m", "plain", "gpt-4o")}
    assert ledger.runs_per_step(ledger_path, wf.workflow_id)["brief"] == 1


def test_quorum_synthesis_runs_when_enough_models_succeed(app: Flask, consumers: ThreadConsumer) -> None:
    wf = Workflow("quorum")
    fan_out(
        wf,
        "analysis",
        fake_llm.new(refusing=["plain"]),
        models=["m", "plain", "gpt-4o"],
        synthesize=("brief", synthesise),
        quorum=2,
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "completed"
    steps = {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)}
    assert steps["analysis:plain"].state == "discarded"
    assert set(steps["brief"].result) == {"m", "gpt-4o"}


def test_quorum_synthesis_gives_up_naming_the_failed_models(app: Flask, consumers: ThreadConsumer) -> None:
    wf = Workflow("no-quorum")
    fan_out(
        wf,
        "analysis",
        fake_llm.new(refusing=["plain", "m"]),
        models=["m", "plain", "gpt-4o"],
        synthesize=("brief", synthesise),
        quorum=2,
    )
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"
    brief = {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)}["brief"]
    assert brief.state == "discarded"
    assert brief.error == (
        "only 1 of 3 models succeeded (analysis:m (discarded), analysis:plain (discarded)); quorum is 2"
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"models": []}, WorkflowError, "models must be a non-empty list"),
        ({"models": "gpt-4o"}, WorkflowError, "models must be a non-empty list"),
        ({"models": ["a", "a"]}, DuplicateStepError, "'analysis:a'"),
        ({"models": ["taken"]}, DuplicateStepError, "'analysis:taken'"),
        ({"models": ["a", "b"], "synthesize": ("fetch", synthesise)}, DuplicateStepError, "'fetch'"),
        ({"models": ["a", "b"], "synthesize": ("brief", synthesise), "quorum": 3}, WorkflowError, "between 1 and 2"),
        ({"models": ["a", "b"], "quorum": 1}, WorkflowError, "quorum needs a synthesize step"),
    ],
)
def test_bad_fan_out_is_refused_and_adds_nothing(kwargs: dict[str, Any], error: type, message: str) -> None:
    wf = Workflow("bad").add("fetch", constant.new()).add("analysis:taken", constant.new())
    with pytest.raises(error, match=message):
        fan_out(wf, "analysis", fake_llm, **kwargs)
    assert wf.step_names == ["fetch", "analysis:taken"]
