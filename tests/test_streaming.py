"""``job.stream``: text a running step publishes as it goes, on both transports.

The ``app`` fixture runs each test on SQLite with the database feed and on
PostgreSQL with Redis pub/sub; a real Huey consumer runs the steps.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from flask_baton import ArgumentError, Workflow, events
from flask_baton.dashboard.streams import StreamedText
from flask_baton.events import STEP_STREAMED, STEP_UPDATED
from flask_baton.store.tables import events as feed_table
from flask_baton.streaming import StepStream, collect, text_of

from .steps import stream_words
from .support import ThreadConsumer, wait_finished

WORDS = [f"w{i}" for i in range(40)]
STREAMED_KEYS = {"event_id", "workflow_id", "step_name", "attempt", "seq", "offset", "text", "timestamp"}


def _until_finished(subscription: Any, timeout: float = 20.0) -> list[events.Event]:
    seen: list[events.Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = subscription.get(timeout=0.5)
        if event is not None:
            seen.append(event)
            if event.name == "workflow_finished":
                return seen
    raise AssertionError(f"no workflow_finished within {timeout}s; got {[e.name for e in seen]}")


def test_a_workflow_subscriber_hears_the_streamed_text_before_the_step_completes(app: Flask) -> None:
    wf = Workflow("stream:words").add("answer", stream_words.new(words=WORDS))
    with ThreadConsumer(app), events.subscribe_workflow(wf.workflow_id) as subscription:
        wf.insert()
        seen = _until_finished(subscription)
    streamed = [e.payload for e in seen if e.name == STEP_STREAMED]
    assert streamed, [e.name for e in seen]
    assert all(set(payload) == STREAMED_KEYS for payload in streamed)
    assert {(p["step_name"], p["attempt"]) for p in streamed} == {("answer", 1)}
    assert [p["seq"] for p in streamed] == list(range(1, len(streamed) + 1))
    offsets = [p["offset"] for p in streamed]
    assert offsets == [sum(len(p["text"]) for p in streamed[:i]) for i in range(len(streamed))]
    text = "".join(p["text"] for p in streamed)
    assert text == "".join(f"{word} " for word in WORDS)
    completed = next(i for i, e in enumerate(seen) if e.name == STEP_UPDATED and e.payload["state"] == "completed")
    last_streamed = max(i for i, e in enumerate(seen) if e.name == STEP_STREAMED)
    assert last_streamed < completed
    assert wait_finished(app, wf.workflow_id).state.value == "completed"
    steps = {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)}
    assert steps["answer"].result == text


def test_streamed_text_stays_off_the_topic_of_every_workflow(app: Flask) -> None:
    wf = Workflow("stream:all").add("answer", stream_words.new(words=WORDS[:5]))
    with ThreadConsumer(app), events.subscribe_all() as everything:
        with events.subscribe_workflow(wf.workflow_id) as mine:
            wf.insert()
            on_workflow = _until_finished(mine)
        on_all = [e for e in _until_finished(everything) if e.workflow_id == wf.workflow_id]
    assert STEP_STREAMED in {e.name for e in on_workflow}
    assert STEP_STREAMED not in {e.name for e in on_all}
    assert STEP_UPDATED in {e.name for e in on_all}


@pytest.mark.parametrize("app_overrides", [{"BATON_STREAM_FLUSH_SECONDS": 60}])
def test_the_database_feed_writes_what_a_stream_held_as_one_row(app: Flask, settings: dict[str, Any]) -> None:
    if "BATON_PUBSUB_URL" in settings:
        pytest.skip("the flush interval is the database feed's")
    wf = Workflow("stream:held").add("answer", stream_words.new(words=WORDS))
    with ThreadConsumer(app), events.subscribe_workflow(wf.workflow_id) as subscription:
        wf.insert()
        seen = _until_finished(subscription)
    streamed = [e.payload for e in seen if e.name == STEP_STREAMED]
    assert [(p["seq"], p["offset"], p["text"]) for p in streamed] == [(1, 0, "".join(f"{w} " for w in WORDS))]
    with app.extensions["baton"].store.read() as conn:
        rows = conn.execute(
            select(func.count()).select_from(feed_table).where(feed_table.c.name == STEP_STREAMED)
        ).scalar_one()
    assert rows == 1


def _stream(sent: list[Any], hold: float = 0.0) -> StepStream:
    return StepStream(workflow_id="w", step_name="s", attempt=2, send=sent.extend, hold=hold)


def test_an_sdk_stream_is_read_by_its_shape() -> None:
    openai = [
        SimpleNamespace(choices=[SimpleNamespace(delta=SimpleNamespace(content=None, role="assistant"))]),
        SimpleNamespace(choices=[SimpleNamespace(delta=SimpleNamespace(content="Hel"))]),
        {"choices": [{"delta": {"content": "lo"}}]},
        SimpleNamespace(choices=[], usage=SimpleNamespace(total_tokens=3)),
    ]
    anthropic = [
        SimpleNamespace(type="message_start", message=SimpleNamespace()),
        SimpleNamespace(type="content_block_delta", delta=SimpleNamespace(type="text_delta", text=", ")),
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "wor"}},
        SimpleNamespace(type="message_stop"),
    ]
    gemini = [SimpleNamespace(text="ld"), SimpleNamespace(text=None)]
    sent: list[Any] = []
    assert collect(_stream(sent), [*openai, *anthropic, *gemini, "!"]) == "Hello, world!"
    assert [e.payload["text"] for e in sent] == ["Hel", "lo", ", ", "wor", "ld", "!"]
    assert [e.payload["offset"] for e in sent] == [0, 3, 5, 7, 10, 12]
    assert {(e.payload["step_name"], e.payload["attempt"]) for e in sent} == {("s", 2)}


def test_a_chunk_of_unknown_shape_is_refused_by_name() -> None:
    with pytest.raises(ArgumentError, match="Decimal"):
        text_of(__import__("decimal").Decimal(1))
    with pytest.raises(ArgumentError, match="int"):
        _stream([]).write(3)  # type: ignore[arg-type]


def test_a_closed_stream_publishes_what_it_held_and_drops_later_text() -> None:
    sent: list[Any] = []
    stream = _stream(sent, hold=60)
    stream.write("a")
    stream.write("b")
    assert sent == []
    stream.close()
    stream.write("c")
    stream.close()
    assert [(e.payload["seq"], e.payload["text"]) for e in sent] == [(1, "ab")]


def test_a_page_pieces_streamed_text_together_by_offset_and_attempt() -> None:
    def piece(offset: int, text: str, attempt: int = 1, seq: int = 2, at: float = 1.0) -> dict[str, Any]:
        return {"step_name": "s", "attempt": attempt, "seq": seq, "offset": offset, "text": text, "timestamp": at}

    shown = StreamedText()
    assert shown.add(piece(0, "Once upon")) == "Once upon"  # read so far when the page opened
    assert shown.add(piece(5, "upon a")) == " a"  # heard live, partly known
    assert shown.add(piece(0, "Once")) == ""  # heard twice
    assert shown.text("s", 1) == "Once upon a"
    assert shown.add(piece(0, "Again", attempt=2, seq=1, at=5.0)) == "Again"  # a retry starts afresh
    assert shown.add(piece(11, " late", attempt=1)) == ""  # the older attempt is over
    assert (shown.text("s", 1), shown.text("s", 2)) == ("", "Again")
    assert shown.add(piece(0, "Again", attempt=2, seq=1, at=5.0)) == ""  # its first piece, heard twice
    assert shown.add(piece(0, "Anew", attempt=2, seq=1, at=9.0)) == "Anew"  # a re-run of attempt 2 (a snooze)
    assert shown.text("s", 2) == "Anew"
    shown.forget("s")  # seen not running: what comes next is a new run
    assert shown.add(piece(4, " more", attempt=2)) == " more"
