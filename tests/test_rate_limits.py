"""``BATON_RATE_LIMITS`` against real consumers, on both backends.

The window of ``rpm`` and ``tpm`` is shortened from 60 to ``WINDOW`` seconds
for these tests (``flask_baton.limits.MINUTE``): the arithmetic is the same at
any scale, and a fan-out then crosses several windows in seconds. Each
granted call is counted from what the step itself recorded: when its call
was counted (``job.rate_limit.at``) and when its function started.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_baton import Baton, ConfigError, Workflow, limits
from flask_baton.buckets import Bucket

from . import ledger
from .apps import open_app
from .steps import baton, constant, paced_call
from .support import Deliveries, ThreadConsumer, step_states, wait_finished, wait_for
from .test_faults import FAST, ConsumerProcess, finish

#: Seconds the tests' ``rpm`` and ``tpm`` count in.
WINDOW = 2.0
LIMITS = {
    "tenant:*": {"rpm": 3, "tpm": 1000},
    "tokens": {"tpm": 1000},
    "gpu": {"concurrency": 2},
    "solo": {"concurrency": 1},
}


@pytest.fixture
def app_overrides(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(limits, "MINUTE", WINDOW)
    return {"BATON_RATE_LIMITS": LIMITS, "BATON_DASHBOARD_AUTH": lambda: True}


def grants(ledger_path: Path, workflow_id: str) -> list[dict[str, Any]]:
    """The recorded calls of a workflow, in the order they were counted."""
    found = [e for e in ledger.entries(ledger_path) if e["workflow_id"] == workflow_id and "granted_at" in e]
    return sorted(found, key=lambda e: e["granted_at"])


def assert_no_window_exceeds(calls: list[dict[str, Any]], rpm: int | None, tpm: int | None) -> None:
    """In no window of ``WINDOW`` seconds more than ``rpm`` calls or ``tpm`` tokens were counted."""
    for first in calls:
        inside = [c for c in calls if first["granted_at"] <= c["granted_at"] < first["granted_at"] + WINDOW]
        if rpm is not None:
            assert len(inside) <= rpm, inside
        if tpm is not None:
            assert sum(c["tokens"] for c in inside) <= tpm, inside
    for call in calls:  # counted before its function started
        assert call["granted_at"] <= call["started_at"]


def fan_out(name: str, count: int, **args: Any) -> Workflow:
    """A root and ``count`` ``paced_call`` steps behind it, each with ``args``."""
    wf = Workflow(name).add("root", constant.new(value=1))
    for index in range(count):
        wf.add(f"call:{index}", paced_call.new(**args), deps=["root"])
    return wf


def attempts_of(app: Flask, workflow_id: str) -> dict[str, int]:
    return {s.step_name: s.attempt for s in app.extensions["baton"].query.get_workflow_jobs(workflow_id)}


def test_a_fan_out_never_exceeds_rpm_or_tpm_in_any_window_nor_spends_an_attempt_waiting(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    # Two tenants of one pattern: each key its own bucket, so each gets its own 3 per window.
    wf = fan_out("paced:tenants", 0)
    for index in range(12):
        tenant = "tenant:acme" if index % 2 else "tenant:globex"
        wf.add(f"call:{index}", paced_call.new(key=tenant, estimate=300, used=250), deps=["root"])
    wf.insert()
    assert wait_finished(app, wf.workflow_id, timeout=90).state == "completed"
    calls = grants(ledger_path, wf.workflow_id)
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"root": 1, **{f"call:{i}": 1 for i in range(12)}}
    assert set(attempts_of(app, wf.workflow_id).values()) == {1}  # waiting used no attempt
    for tenant in ("tenant:acme", "tenant:globex"):
        assert_no_window_exceeds([c for c in calls if c["key"] == tenant], rpm=3, tpm=1000)
    query = app.extensions["baton"].query
    runs = [run.outcome.value for i in range(12) for run in query.get_step_attempts(wf.workflow_id, f"call:{i}")]
    assert runs.count("completed") == 12
    assert runs.count("snoozed") >= 6  # each tenant's three beyond its first window waited


def test_tokens_per_minute_pace_calls_by_their_estimates(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    wf = fan_out("paced:tokens", 6, key="tokens", estimate=400, used=400)
    wf.insert()
    assert wait_finished(app, wf.workflow_id, timeout=60).state == "completed"
    calls = grants(ledger_path, wf.workflow_id)
    assert len(calls) == 6
    assert_no_window_exceeds(calls, rpm=None, tpm=1000)  # two per window


def test_a_concurrency_limit_runs_at_most_n_at_once_and_shows_who_waits(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path, tmp_path: Path
) -> None:
    hold = tmp_path / "hold"
    hold.mkdir()
    wf = fan_out("paced:gpu", 5, key="gpu", hold_dir=str(hold))
    try:
        wf.insert()
        wait_for(lambda: len(list(hold.glob("*.running"))) == 2, "two steps to hold the two slots")
        waiting = wait_for(lambda: snoozed(app, wf.workflow_id, 3), "the three others to wait for a slot")
        reasons = {baton.explain(wf.workflow_id, name).reason for name in waiting}
        assert all(reason.startswith("waiting for gpu: 2 of 2 running") for reason in reasons), reasons
        page = app.test_client().get(f"/baton/workflows/{wf.workflow_id}").get_data(as_text=True)
        assert page.count('<span class="wait">waiting for gpu: 2 of 2 running') == 3
        status = app.test_cli_runner().invoke(args=["baton", "status", wf.workflow_id]).output
        assert status.count("waiting for gpu: 2 of 2 running") == 3, status
        assert len(list(hold.glob("*.running"))) == 2
    finally:
        (hold / "release").touch()
    assert wait_finished(app, wf.workflow_id, timeout=60).state == "completed"
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"root": 1, **{f"call:{i}": 1 for i in range(5)}}
    assert set(attempts_of(app, wf.workflow_id).values()) == {1}
    assert max_overlap(hold) == 2
    assert all(not bucket.slots for bucket in app.extensions["baton"].limiter.buckets().values())


def snoozed(app: Flask, workflow_id: str, count: int) -> list[str] | None:
    """The names of the snoozed steps, once there are ``count`` of them."""
    names = [s.step_name for s in app.extensions["baton"].query.get_workflow_jobs(workflow_id) if s.state == "snoozed"]
    return names if len(names) == count else None


def max_overlap(hold: Path) -> int:
    """The most runs that were inside their function at once (``paced_call`` notes each run's span)."""
    spans = [tuple(map(float, path.read_text().split())) for path in hold.glob("*.span")]
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _at, step in edges:
        running += step
        most = max(most, running)
    return most


def test_a_provider_rate_limit_snoozes_the_step_and_slows_its_key(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    first = fan_out("paced:429", 1, key="tenant:slow", provider_says_wait=1.5)
    first.insert()
    wait_for(
        lambda: (
            ledger.runs_per_step(ledger_path, first.workflow_id)["call:0"] == 1
            and step_states(app, first.workflow_id)["call:0"] == "snoozed"
        ),
        "the provider's 429 to snooze the step",
    )
    told_at = grants(ledger_path, first.workflow_id)[0]["started_at"]
    # Another workflow's step of the same key waits for the provider too.
    second = fan_out("paced:after-429", 1, key="tenant:slow")
    second.insert()
    assert wait_finished(app, first.workflow_id, timeout=30).state == "completed"
    assert wait_finished(app, second.workflow_id, timeout=30).state == "completed"
    assert attempts_of(app, first.workflow_id)["call:0"] == 1
    retried = grants(ledger_path, first.workflow_id)[1]
    other = grants(ledger_path, second.workflow_id)[0]
    assert retried["granted_at"] >= told_at + 1.5
    assert other["granted_at"] >= told_at + 1.5


def test_an_unknown_computed_key_discards_the_step_naming_it(app: Flask, consumer: ThreadConsumer) -> None:
    wf = fan_out("paced:unknown", 1, key="anthropic")
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"
    error = app.extensions["baton"].query.get_workflow_job(wf.workflow_id, "call:0").error
    assert "step 'paced_call' has rate_limit key 'anthropic', which no key of BATON_RATE_LIMITS matches" in error


def test_an_estimate_above_the_tpm_discards_the_step_naming_the_key(app: Flask, consumer: ThreadConsumer) -> None:
    wf = fan_out("paced:huge", 1, key="tokens", estimate=5000)
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "failed"
    error = app.extensions["baton"].query.get_workflow_job(wf.workflow_id, "call:0").error
    assert "estimates 5,000 tokens, more than the tpm of 1,000 of rate_limit key 'tokens'" in error


def test_a_step_key_missing_from_the_config_fails_init_app_naming_it(settings: dict[str, Any]) -> None:
    other = Baton()

    @other.step(rate_limit="anthropic")
    def ask(job: Any) -> None:
        """Never runs."""

    from flask import Flask as App

    app = App("unknown_key")
    app.config.update(settings, BATON_RATE_LIMITS={"openai": {"rpm": 10}})
    from flask_sqlalchemy import SQLAlchemy

    db = SQLAlchemy()
    db.init_app(app)
    with pytest.raises(ConfigError, match=r"step 'ask' has rate_limit key 'anthropic'.*configured: 'openai'"):
        other.init_app(app, db=db)


# -- kill -9 while holding slots ---------------------------------------------------------


@pytest.fixture
def slot_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Short leases and sweeps; the limits as JSON, as an environment variable gives them."""
    return {**settings, **FAST, "BATON_RATE_LIMITS": json.dumps(LIMITS)}


@pytest.fixture
def slot_app(slot_settings: dict[str, Any]) -> Iterator[Flask]:
    with open_app(slot_settings) as app, app.app_context():
        baton.create_schema()
        yield app


def slots_held(app: Flask) -> dict[str, Bucket]:
    return {key: bucket for key, bucket in app.extensions["baton"].limiter.buckets().items() if bucket.slots}


def test_slots_held_by_a_consumer_killed_with_sigkill_come_back_within_the_lease(
    slot_app: Flask, slot_settings: dict[str, Any], ledger_path: Path, tmp_path: Path
) -> None:
    hold = tmp_path / "hold"
    hold.mkdir()
    wf = fan_out("paced:killed", 4, key="gpu", hold_dir=str(hold))
    with ConsumerProcess(slot_settings, tmp_path / "first.log", workers=4) as first:
        wf.insert()
        wait_for(lambda: len(list(hold.glob("*.running"))) == 2, "the first consumer to hold both slots", timeout=30)
        first.send(signal.SIGKILL)
        first.wait()
    killed_at = time.time()
    held = slots_held(slot_app)["gpu"].slots
    assert len(held) == 2 and {slot.worker for slot in held.values()} == {first.worker}
    for running in hold.glob("*.running"):
        running.unlink()  # the killed runs never cleaned up
    (hold / "release").touch()
    with ConsumerProcess(slot_settings, tmp_path / "second.log", workers=4) as second:
        assert finish(slot_app, wf.workflow_id, first, second) == "completed"
    runs = ledger.runs_per_step(ledger_path, wf.workflow_id)
    killed_steps = {name for name, count in runs.items() if count == 2}
    assert len(killed_steps) == 2 and sum(runs.values()) == 1 + 4 + 2  # root, four calls, two again
    second_runs = [e for e in grants(ledger_path, wf.workflow_id) if e["pid"] == second.pid]
    assert {e["step"] for e in second_runs} >= killed_steps
    assert min(e["granted_at"] for e in second_runs) > killed_at
    assert not slots_held(slot_app)


def test_a_slot_waiter_is_woken_by_the_release_not_by_its_fallback(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path, tmp_path: Path
) -> None:
    hold = tmp_path / "hold"
    hold.mkdir()
    (hold / "release").touch()  # nobody is held: each slot frees as its step returns
    with Deliveries(app):
        wf = fan_out("paced:woken", 6, key="gpu", hold_dir=str(hold))
        wf.insert()
        # The fallback is BATON_LEASE_SECONDS (60 s): finishing well inside it means releases woke the waiters.
        assert wait_finished(app, wf.workflow_id, timeout=30).state == "completed"
    assert set(attempts_of(app, wf.workflow_id).values()) == {1}


def test_a_step_may_declare_its_keys_limits_and_the_usage_is_readable(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    from .steps import declared_limit_call

    wf = Workflow("declared").add("one", declared_limit_call.new()).add("two", declared_limit_call.new())
    wf.insert()
    assert wait_finished(app, wf.workflow_id).state == "completed"
    usage = {u.key: u for u in baton.rate_limits()}["declared-on-step"]
    assert (usage.calls, usage.running, usage.limit.rpm, usage.limit.concurrency) == (2, 0, 100, 1)
    assert usage.describe(time.time()) == "declared-on-step: 2 of 100 rpm, 0 of 1 running"
    status = app.test_cli_runner().invoke(args=["baton", "status"])
    assert "rate limits:\n  declared-on-step: 2 of 100 rpm, 0 of 1 running" in status.output


def test_two_steps_declaring_different_limits_for_one_key_is_an_error_naming_both() -> None:
    from flask_baton import ArgumentError, RateLimit

    other = Baton()
    other.step(name="a", rate_limit=RateLimit("openai", rpm=10))(lambda job: None)
    with pytest.raises(ArgumentError, match=r"step 'b' declares RateLimit\('openai', rpm=20\), but step 'a' declares"):
        other.step(name="b", rate_limit=RateLimit("openai", rpm=20))(lambda job: None)
    with pytest.raises(ArgumentError, match=r"RateLimit\['openai'\]\['rpm'\] must be a whole number > 0, got 0"):
        RateLimit("openai", rpm=0)


def test_a_database_at_schema_version_5_is_upgraded_in_place(app: Flask) -> None:
    from flask_baton.store import migrations

    from .support import make_version

    make_version(app, 5)
    assert baton.create_schema() == (5, migrations.SCHEMA_VERSION)


def test_a_cancelled_waiter_hands_its_turn_to_the_next_at_once(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path
) -> None:
    hold = tmp_path / "hold"
    hold.mkdir()
    holder = fan_out("paced:holder", 1, key="solo", hold_dir=str(hold))
    cancelled = fan_out("paced:cancelled", 1, key="solo", hold_dir=str(hold))
    later = fan_out("paced:later", 1, key="solo", hold_dir=str(hold))
    try:
        holder.insert()
        wait_for(lambda: len(list(hold.glob("*.running"))) == 1, "a step to hold the one slot")
        cancelled.insert()
        wait_for(lambda: snoozed(app, cancelled.workflow_id, 1), "the first waiter to queue")
        later.insert()
        wait_for(lambda: snoozed(app, later.workflow_id, 1), "the second waiter to queue behind it")
        baton.cancel_workflow(cancelled.workflow_id)
    finally:
        (hold / "release").touch()
    # Its fallback is BATON_LEASE_SECONDS (60 s): the released slot's wake-up skipped the cancelled waiter.
    assert wait_finished(app, later.workflow_id, timeout=30).state == "completed"
    assert wait_finished(app, holder.workflow_id, timeout=30).state == "completed"


def test_steps_waiting_for_a_key_are_served_before_a_later_workflow_s(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    first = fan_out("paced:first", 6, key="tenant:fifo")
    first.insert()
    wait_for(lambda: snoozed(app, first.workflow_id, 3), "three of the first workflow's calls to wait")
    later = fan_out("paced:later", 3, key="tenant:fifo")
    later.insert()
    assert wait_finished(app, first.workflow_id, timeout=60).state == "completed"
    assert wait_finished(app, later.workflow_id, timeout=60).state == "completed"
    first_calls, later_calls = grants(ledger_path, first.workflow_id), grants(ledger_path, later.workflow_id)
    assert max(c["granted_at"] for c in first_calls) < min(c["granted_at"] for c in later_calls)
    assert_no_window_exceeds(sorted(first_calls + later_calls, key=lambda c: c["granted_at"]), rpm=3, tpm=1000)
