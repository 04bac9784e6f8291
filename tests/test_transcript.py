"""Captured model calls read as transcripts, and a step's runs as its page lists them (pure, no Flask)."""

from __future__ import annotations

import json
from typing import Any

from flask_baton.dashboard.attempt_view import assign, attempt_view
from flask_baton.dashboard.transcript import Message, Part, decode, details_of, messages_of, response_of, transcript
from flask_baton.records import AttemptRecord, ContextCapture
from flask_baton.states import AttemptOutcome


def capture(
    messages: Any, response: Any, *, attempt: int = 1, at: float = 10.0, cut: int | None = None
) -> ContextCapture:
    text, answer = json.dumps(messages), json.dumps(response)
    if cut is not None:
        text = text[:cut]
    return ContextCapture("w", "n", "s", attempt, text, answer, cut is not None, at)


def shape(messages: list[Message]) -> list[tuple[str, list[tuple[str, str, str | None]]]]:
    return [(m.role, [(p.kind, p.text, p.title) for p in m.parts]) for m in messages]


def test_openai_chat_messages_with_text_parts_tool_calls_and_tool_results() -> None:
    found = messages_of(
        [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Hi"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}],
            },
            {"role": "tool", "tool_call_id": "call_1", "name": "f", "content": "42"},
            {"role": "tool", "tool_call_id": "call_2", "content": '{"temp": 21}'},
        ]
    )
    assert shape(found) == [
        ("system", [("text", "Be brief.", None)]),
        ("user", [("text", "Hi", None), ("image", "https://x/y.png", None)]),
        ("assistant", [("call", '{\n  "a": 1\n}', "f")]),
        ("tool", [("text", "42", None)]),
        ("tool", [("data", '{\n  "temp": 21\n}', None)]),
    ]
    assert found[2].parts[0].ref == "call_1"
    assert (found[3].ref, found[3].name) == ("call_1", "f")


def test_anthropic_request_with_system_tool_use_tool_result_thinking_and_an_inline_image() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR" * 100}}
    found = messages_of(
        {
            "model": "claude",
            "system": [{"type": "text", "text": "You are terse."}],
            "messages": [
                {"role": "user", "content": [image, {"type": "text", "text": "What is this?"}]},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "Looks like a chart."},
                        {"type": "tool_use", "id": "tu_1", "name": "zoom", "input": {"x": 2}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "tu_1",
                            "content": [{"type": "text", "text": "ok"}],
                            "is_error": True,
                        }
                    ],
                },
            ],
        }
    )
    assert shape(found) == [
        ("system", [("text", "You are terse.", None)]),
        ("user", [("image", "image/png, base64", None), ("text", "What is this?", None)]),
        ("assistant", [("thinking", "Looks like a chart.", None), ("call", '{\n  "x": 2\n}', "zoom")]),
        ("user", [("result", "ok", "error")]),
    ]
    assert found[2].parts[1].ref == "tu_1" and found[3].parts[0].ref == "tu_1"


def test_responses_api_items_gemini_parts_and_unknown_shapes_kept_as_json() -> None:
    found = messages_of(
        {
            "instructions": "Be kind.",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Hello"}]},
                {"type": "function_call", "name": "lookup", "arguments": "not json", "call_id": "c1"},
                {"type": "function_call_output", "call_id": "c1", "output": "found"},
                {"role": "model", "parts": [{"functionCall": {"name": "g", "args": {"q": 1}}}]},
                {"weird": True},
                7,
            ],
        }
    )
    assert shape(found) == [
        ("system", [("text", "Be kind.", None)]),
        ("user", [("text", "Hello", None)]),
        ("assistant", [("call", "not json", "lookup")]),
        ("tool", [("result", "found", None)]),
        ("model", [("call", '{\n  "q": 1\n}', "g")]),
        ("data", [("data", '{\n  "weird": true\n}', None)]),
        ("data", [("data", "7", None)]),
    ]
    assert found[3].ref == "c1"
    assert shape(messages_of("just a prompt")) == [("prompt", [("text", "just a prompt", None)])]
    assert messages_of(None) == []


def test_one_message_captured_alone_reads_as_it_would_in_a_list() -> None:
    gemini = {"parts": [{"text": "Hi"}]}
    call = {"type": "function_call", "name": "lookup", "arguments": "{}", "call_id": "c1"}
    for item in (gemini, call, {"role": "user", "content": "Hello"}, {"weird": True}, 7):
        assert shape(messages_of(item)) == shape(messages_of([item]))


def test_responses_of_each_sdk_and_their_details() -> None:
    openai = {
        "model": "gpt-4o-mini",
        "choices": [{"message": {"role": "assistant", "content": "Paris", "refusal": None}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 3},
    }
    anthropic = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "Lyon"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 2},
    }
    responses = {
        "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Nice"}]}]
    }
    gemini = {"candidates": [{"content": {"parts": [{"text": "Tours"}]}}]}
    assert shape(response_of(openai)) == [("assistant", [("text", "Paris", None)])]
    assert shape(response_of(anthropic)) == [("assistant", [("text", "Lyon", None)])]
    assert shape(response_of(responses)) == [("assistant", [("text", "Nice", None)])]
    assert shape(response_of(gemini)) == [("model", [("text", "Tours", None)])]
    assert shape(response_of({"text": "plain"})) == [("response", [("text", "plain", None)])]
    assert shape(response_of("words")) == [("response", [("text", "words", None)])]
    assert response_of({"id": 3, "nested": {"a": 1}})[0].parts[0].kind == "data"
    assert list(details_of(openai)) == [("model", "gpt-4o-mini"), ("stop", "stop"), ("tokens", "1,200 in · 3 out")]
    assert list(details_of(anthropic)) == [("stop", "end_turn"), ("tokens", "10 in · 2 out")]
    assert list(details_of("words")) == []


def test_a_capture_cut_in_its_messages_keeps_the_whole_ones_and_shows_the_rest_as_cut() -> None:
    messages = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "second " * 20}]
    cut_at = len(json.dumps(messages[:1])) + 30
    found = transcript(capture(messages, {"text": "ok"}, cut=cut_at))

    assert found.truncated
    assert [m.role for m in found.messages] == ["user", "cut"]
    assert found.messages[1].parts[0] == Part("cut", json.dumps(messages)[len(json.dumps(messages[:1])) + 1 : cut_at])
    assert shape(list(found.response)) == [("response", [("text", "ok", None)])]
    assert decode('{"messages": [1, 2') == (None, '{"messages": [1, 2')
    assert decode("[1, 2, 3") == ([1, 2], "3")


def test_text_from_the_model_is_kept_as_written_for_the_template_to_escape() -> None:
    attack = "<script>alert(1)</script>"
    found = transcript(capture([{"role": "user", "content": attack}], {"choices": [{"message": {"content": attack}}]}))
    assert found.messages[0].parts[0].text == attack and found.response[0].parts[0].text == attack
    assert {m.role_class for m in messages_of([{"role": "<b>x</b>", "content": ""}])} == {"other"}


def run(
    attempt: int, outcome: AttemptOutcome, start: float, end: float | None, error: str | None = None
) -> AttemptRecord:
    return AttemptRecord("w", "n", "s", attempt, outcome, "host:1", start, end, error)


def test_each_capture_goes_to_the_run_with_its_attempt_number_that_started_last_before_it() -> None:
    runs = [
        run(1, AttemptOutcome.SNOOZED, 0, 1),
        run(1, AttemptOutcome.FAILED, 2, 3),
        run(2, AttemptOutcome.DISCARDED, 4, 5),
        run(1, AttemptOutcome.COMPLETED, 6, 7),  # after a retry by hand
    ]
    captures = [capture([], None, attempt=a, at=at) for a, at in ((1, 0.5), (1, 2.5), (2, 4.5), (1, 6.5), (3, 6.6))]

    owned = assign(runs, captures)

    assert [[c.created_at for c in mine] for mine in owned] == [[0.5], [2.5], [4.5], [6.5]]
    views = [attempt_view(i, r, [], runs[i - 1] if i else None, 10.0) for i, r in enumerate(runs)]
    assert [v.retried_by_hand for v in views] == [False, False, False, True]
    assert [v.label for v in views] == ["snoozed", "failed, retried", "discarded", "completed"]


def test_a_run_that_timed_out_says_so_and_a_running_one_ticks() -> None:
    timeout = "Traceback (most recent call last):\nflask_baton.errors.StepTimeout: step 'x' ran longer than 1s\n"
    timed_out = attempt_view(0, run(1, AttemptOutcome.FAILED, 0, 1, timeout), [], None, 5.0)
    discarded = attempt_view(1, run(2, AttemptOutcome.DISCARDED, 2, 3, timeout), [], None, 5.0)
    running = attempt_view(2, run(3, AttemptOutcome.RUNNING, 4, None), [], None, 6.5)
    assert (timed_out.label, discarded.label) == ("timed out, retried", "timed out, discarded")
    assert (running.label, running.running_since, running.duration, running.finished) == ("running", 4, "2.5 s", None)
