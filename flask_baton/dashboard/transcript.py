"""A captured model call (``job.capture_context``) read as a chat transcript.

A step captures whatever its SDK takes and returns, so the messages and the
response come in several shapes: OpenAI chat (``content`` as a string or a
list of parts, ``tool_calls``, ``role: "tool"`` results), the OpenAI
Responses API (``input`` / ``output`` items), Anthropic (``system`` apart,
``tool_use`` / ``tool_result`` blocks) and Gemini (``parts``). This module
turns each into one shape, ``Message``s of typed ``Part``s, and leaves
anything it does not recognise as pretty JSON, never dropped. A capture cut at
``BATON_DEBUG_CAPTURE_MAX_BYTES`` is no longer JSON: the messages complete
before the cut are kept, and the rest is a ``cut`` part.

Pure: no Flask, no database. Text stays text; the template escapes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..records import ContextCapture

#: Roles the page colours; any other role is shown as written, coloured as ``other``.
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "model", "prompt", "response"})
#: Longest image address shown (data URLs are kilobytes of base64).
ADDRESS_CHARS = 80
_TEXT = frozenset({"text", "input_text", "output_text"})
_IMAGE = frozenset({"image", "image_url", "input_image"})


@dataclass(frozen=True)
class Part:
    """One piece of a message.

    ``kind``: ``text``; ``call`` (a tool call: ``title`` the tool, ``ref`` its
    id, ``text`` its arguments); ``result`` (a tool's answer: ``ref`` the
    call it answers); ``image`` (``text`` where it is); ``thinking``;
    ``data`` (JSON of a shape not recognised); ``cut`` (what was stored of a
    capture past its last whole message).
    """

    kind: str
    text: str
    title: str | None = None
    ref: str | None = None


@dataclass(frozen=True)
class Message:
    """One turn: who said it (``role``, ``name``), what it answers (``ref``), its parts."""

    role: str
    parts: tuple[Part, ...]
    name: str | None = None
    ref: str | None = None

    @property
    def role_class(self) -> str:
        """The CSS class of its role: one of ``ROLES``, or ``other``."""
        return self.role if self.role in ROLES else "other"


@dataclass(frozen=True)
class Transcript:
    """One capture: the messages sent, the response, details of the call, and whether it was cut."""

    attempt: int
    created_at: float
    messages: tuple[Message, ...]
    response: tuple[Message, ...]
    details: tuple[tuple[str, str], ...]
    truncated: bool
    size: int  # bytes stored, messages and response together


def transcript(capture: ContextCapture) -> Transcript:
    """Read a stored capture as a transcript."""
    messages, messages_cut = decode(capture.messages)
    response, response_cut = decode(capture.response)
    return Transcript(
        capture.attempt,
        capture.created_at,
        tuple(_with_cut(messages_of(messages), messages_cut)),
        tuple(_with_cut(response_of(response), response_cut)),
        tuple(details_of(response)),
        capture.truncated,
        len(capture.messages.encode()) + len(capture.response.encode()),
    )


def decode(text: str) -> tuple[Any, str | None]:
    """Stored JSON as a value, and the text left over when it was cut (None when whole).

    A cut list keeps its items that were stored whole; anything else cut
    keeps nothing but the text.
    """
    try:
        return json.loads(text), None
    except ValueError:
        pass
    stripped = text.lstrip()
    if not stripped.startswith("["):
        return None, text
    decoder, at = json.JSONDecoder(), 1
    items: list[Any] = []
    while True:
        while at < len(stripped) and stripped[at] in " \t\r\n,":
            at += 1
        try:
            item, end = decoder.raw_decode(stripped, at)
        except ValueError:
            return items, stripped[at:]
        if not isinstance(item, (dict, list, str)) and not stripped[end:].lstrip().startswith((",", "]")):
            return items, stripped[at:]  # a number or literal at the cut may have been longer
        items.append(item)
        at = end


def messages_of(value: Any) -> list[Message]:
    """The messages sent, from a list of them, a request body (``messages`` / ``input`` / ``contents``), or a prompt."""
    if value is None:
        return []
    if isinstance(value, list):
        return [_entry(item) for item in value]
    if isinstance(value, Mapping):
        for key in ("messages", "input", "contents"):
            if key in value:
                system = value.get("system", value.get("instructions", value.get("system_instruction")))
                head = [] if system is None else [Message("system", tuple(_parts(system)))]
                return head + messages_of(value[key])
    return [_entry(value)]  # one message, a prompt, or a value shown as data


def response_of(value: Any) -> list[Message]:
    """The model's answer: an OpenAI chat completion or Responses API result, an Anthropic or Gemini message, text."""
    if value is None or isinstance(value, list):
        return messages_of(value)  # nothing, or output items: read as the messages sent are
    if not isinstance(value, Mapping):
        return [Message("response", (_part(value),))]  # text, or a bare value shown as data
    if isinstance(value.get("choices"), list):
        return [_choice(choice) for choice in value["choices"]]
    if isinstance(value.get("output"), list):
        return [_entry(item) for item in value["output"]]
    if isinstance(value.get("candidates"), list):
        return [_message({"role": "model", **(c.get("content") or {})}) for c in value["candidates"]]
    if "content" in value or "role" in value:
        return [_message({"role": "assistant", **value})]
    if isinstance(value.get("text"), str) and all(not isinstance(v, (dict, list)) for v in value.values()):
        return [Message("response", (Part("text", value["text"]),))]
    return [Message("response", (_data(value),))]


def details_of(response: Any) -> Iterator[tuple[str, str]]:
    """The call's model, why it stopped and its token counts, when the response says them."""
    if not isinstance(response, Mapping):
        return
    if isinstance(response.get("model"), str):
        yield "model", response["model"]
    choices = response.get("choices")
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], Mapping) else {}
    stop = response.get("stop_reason") or first.get("finish_reason") or response.get("status")
    if isinstance(stop, str):
        yield "stop", stop
    usage = response.get("usage")
    if isinstance(usage, Mapping):
        sent = usage.get("input_tokens", usage.get("prompt_tokens"))
        got = usage.get("output_tokens", usage.get("completion_tokens"))
        if isinstance(sent, int) and isinstance(got, int):
            yield "tokens", f"{sent:,} in · {got:,} out"


def _with_cut(messages: list[Message], cut: str | None) -> Iterator[Message]:
    yield from messages
    if cut is not None:
        yield Message("cut", (Part("cut", cut),))


def _choice(choice: Any) -> Message:
    if not isinstance(choice, Mapping):
        return Message("assistant", (_data(choice),))
    message = choice.get("message") or choice.get("delta")
    if isinstance(message, Mapping):
        return _message({"role": "assistant", **message})
    return Message("assistant", tuple(_parts(choice.get("text"))))


def _entry(item: Any) -> Message:
    """One item of a message list: a message, a Responses API item, or a bare value."""
    if isinstance(item, Mapping):
        kind = item.get("type")
        if "role" in item or "parts" in item:
            return _message(item)
        if kind in ("function_call", "tool_use", "reasoning", "thinking"):
            return Message("assistant", (_part(item),))
        if kind in ("function_call_output", "tool_result"):
            return Message("tool", (_part(item),), ref=_text_or_none(item.get("call_id", item.get("tool_use_id"))))
    if isinstance(item, str):
        return Message("prompt", (Part("text", item),))
    return Message("data", (_data(item),))


def _message(message: Mapping[str, Any]) -> Message:
    role = str(message.get("role") or message.get("type") or "message")
    parts = list(_parts(message.get("content", message.get("parts"))))
    if isinstance(message.get("refusal"), str):
        parts.append(Part("text", message["refusal"], title="refusal"))
    calls = message.get("tool_calls") or []
    if isinstance(message.get("function_call"), Mapping):
        calls = [*calls, {"function": message["function_call"]}]
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            parts.append(
                Part(
                    "call", _pretty_json(function.get("arguments")), _text_or_none(function.get("name")), call.get("id")
                )
            )
        else:
            parts.append(_data(call))
    ref = message.get("tool_call_id")
    if role in ("tool", "function"):
        parts = [Part("data", _pretty_json(p.text)) if p.kind == "text" and _is_json(p.text) else p for p in parts]
    return Message(role, tuple(parts), _text_or_none(message.get("name")), _text_or_none(ref))


def _parts(content: Any) -> Iterator[Part]:
    if content is None:
        return
    if isinstance(content, list):
        for item in content:
            yield _part(item)
    else:
        yield _part(content)


def _part(item: Any) -> Part:
    if isinstance(item, str):
        return Part("text", item)
    if not isinstance(item, Mapping):
        return _data(item)
    kind = item.get("type")
    if (kind in _TEXT or kind is None) and isinstance(item.get("text"), str):
        return Part("text", item["text"])
    if kind in _IMAGE:
        return Part("image", _address(item))
    if kind in ("tool_use", "function_call"):
        arguments = item.get("input", item.get("arguments"))
        return Part(
            "call", _pretty_json(arguments), _text_or_none(item.get("name")), item.get("id", item.get("call_id"))
        )
    if kind in ("tool_result", "function_call_output"):
        answer = item.get("content", item.get("output"))
        title = "error" if item.get("is_error") else None
        text = _joined(answer)
        return Part(
            "result",
            _pretty_json(text) if _is_json(text) else text,
            title,
            _text_or_none(item.get("tool_use_id", item.get("call_id"))),
        )
    if kind in ("thinking", "reasoning", "redacted_thinking"):
        thought = item.get("thinking") or item.get("summary") or "[redacted]"
        return Part("thinking", _joined(thought))
    if kind == "refusal" and isinstance(item.get("refusal"), str):
        return Part("text", item["refusal"], title="refusal")
    if isinstance(item.get("functionCall"), Mapping):
        call = item["functionCall"]
        return Part("call", _pretty_json(call.get("args")), _text_or_none(call.get("name")))
    if isinstance(item.get("functionResponse"), Mapping):
        answer = item["functionResponse"]
        return Part("result", _joined(answer.get("response")), _text_or_none(answer.get("name")))
    return _data(item)


def _joined(value: Any) -> str:
    """A tool result or a thought as text: strings and text parts joined, anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(_plain_text(item) is not None for item in value):
        return "\n".join(_plain_text(item) or "" for item in value)
    return _pretty(value)


def _plain_text(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping) and isinstance(item.get("text"), str):
        return str(item["text"])
    return None


def _address(item: Mapping[str, Any]) -> str:
    """Where an image is: its URL (a data URL shortened), or its media type when sent inline."""
    image = item.get("image_url", item.get("source"))
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str) and isinstance(image, Mapping):
        url = f"{image.get('media_type', 'image')}, {image.get('type', 'inline')}"
    text = str(url or "image")
    if len(text) > ADDRESS_CHARS:
        text = text[: ADDRESS_CHARS - 1] + f"… ({len(text):,} characters)"
    return text


def _pretty_json(value: Any) -> str:
    """JSON (a string of it, or a value) pretty; other text as written: a call's arguments, a tool's answer."""
    if isinstance(value, str):
        try:
            return _pretty(json.loads(value))
        except ValueError:
            return value
    return "" if value is None else _pretty(value)


def _is_json(text: str) -> bool:
    """Whether ``text`` is a JSON object or list (a tool's answer often is): shown pretty, as data."""
    if not text.lstrip().startswith(("{", "[")):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _data(value: Any) -> Part:
    return Part("data", _pretty(value))


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
