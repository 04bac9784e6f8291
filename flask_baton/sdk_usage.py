"""Token counts from an LLM SDK's response, read by its shape: no SDK is imported.

``job.record_usage(response)`` takes what ``client.chat.completions.create``,
``client.responses.create``, ``anthropic.messages.create`` or Google GenAI's
``generate_content`` returned, or its dict form (``response.model_dump()``).
Each API counts tokens its own way; flask_baton's columns are disjoint, so
that each is priced once:

- ``input_tokens``: prompt tokens billed at the full input price (neither
  read from nor written to a cache);
- ``cached_input_tokens``: prompt tokens read from the provider's cache;
- ``cache_write_tokens``: prompt tokens written to it (Anthropic bills them
  above the input price);
- ``output_tokens``: generated tokens other than reasoning;
- ``reasoning_tokens``: the model's hidden reasoning ("thinking"), billed as
  output by the providers but reported apart.

OpenAI's ``prompt_tokens`` / ``input_tokens`` include its cache reads and
writes, and every API's output count but Gemini's includes the reasoning, so
those are taken out; Anthropic's ``input_tokens`` already leaves out cache
reads and writes; Gemini's ``prompt_token_count`` includes the cached content,
its ``candidates_token_count`` leaves out the thoughts. Pure: no Flask, no SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ArgumentError
from .records import ModelCall

_MISSING = object()


@dataclass(frozen=True)
class ResponseUsage:
    """What one response says it used, in flask_baton's disjoint counts."""

    model: str | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0


def _field(source: Any, name: str) -> Any:
    """``source[name]`` of a dict, else its attribute; ``_MISSING`` when it has neither."""
    if isinstance(source, Mapping):
        return source.get(name, _MISSING)
    return getattr(source, name, _MISSING)


def _value(source: Any, *path: str) -> Any:
    """The value at ``path`` (``None`` when any part is absent or ``None``)."""
    for name in path:
        if source is None or source is _MISSING:
            return None
        source = _field(source, name)
    return None if source is _MISSING else source


def _tokens(source: Any, *path: str) -> int:
    """A token count at ``path``: 0 when absent or ``None`` (an API leaves out what it did not use)."""
    value = _value(source, *path)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ArgumentError(f"the response's {'.'.join(path)} must be a whole number >= 0, got {value!r}")
    return value


def _has(source: Any, name: str) -> bool:
    return _field(source, name) is not _MISSING


#: Fields only an LLM response has: seeing one, a response without usage is
#: "no usage" (a warning), not "not a response" (an error).
_RESPONSE_MARKS = ("usage", "usage_metadata", "choices", "candidates")


def is_response(response: Any) -> bool:
    """Whether ``response`` has the shape of a response of one of the APIs read here."""
    return any(_has(response, name) for name in _RESPONSE_MARKS) or (
        _value(response, "object") == "response" or _value(response, "type") == "message"
    )


def read_usage(response: Any) -> ResponseUsage | None:
    """The usage ``response`` reports; ``None`` for a response that carries none.

    Raises ``ArgumentError`` naming the type of what was passed when it is no
    response of a known API, and when a count in it is not a whole number >= 0.
    """
    if not is_response(response):
        raise ArgumentError(
            f"record_usage() takes an OpenAI, Anthropic or Google GenAI response (or its model_dump() dict), "
            f"or token counts as keywords; got {type(response).__name__} {_preview(response)}"
        )
    gemini = _value(response, "usage_metadata")
    if gemini is not None:
        return _gemini(gemini, _value(response, "model_version"))
    usage = _value(response, "usage")
    if usage is None:
        return None
    model = _value(response, "model")
    if _has(usage, "prompt_tokens"):
        return _chat_completions(usage, model)
    if _has(usage, "input_tokens"):
        return _input_output(usage, model)
    raise ArgumentError(f"the response's usage has no token counts this version reads: {_preview(usage)}")


def call_of_response(response: Any, model: str | None, latency: float) -> ModelCall | None:
    """The call an SDK's response reports, named ``model`` or as the response names it.

    ``None`` when the response carries no usage; ``ArgumentError`` when it is
    no response, or names no model and ``model`` is not given.
    """
    read = read_usage(response)
    if read is None:
        return None
    name = read.model if model is None else model
    if name is None:
        raise ArgumentError(f"the {type(response).__name__} passed to record_usage() names no model: pass model=")
    return ModelCall(
        name,
        read.input_tokens,
        read.output_tokens,
        read.cached_input_tokens,
        latency,
        reasoning_tokens=read.reasoning_tokens,
        cache_write_tokens=read.cache_write_tokens,
    )


def _chat_completions(usage: Any, model: Any) -> ResponseUsage:
    """OpenAI chat completions: ``prompt_tokens`` includes cache reads and writes; ``completion_tokens``, reasoning."""
    cached = _tokens(usage, "prompt_tokens_details", "cached_tokens")
    writes = _tokens(usage, "prompt_tokens_details", "cache_write_tokens")
    reasoning = _tokens(usage, "completion_tokens_details", "reasoning_tokens")
    return ResponseUsage(
        _model(model),
        _remainder(usage, "prompt_tokens", cached + writes),
        _remainder(usage, "completion_tokens", reasoning),
        cached_input_tokens=cached,
        reasoning_tokens=reasoning,
        cache_write_tokens=writes,
    )


def _input_output(usage: Any, model: Any) -> ResponseUsage:
    """OpenAI's Responses API and Anthropic's messages: both say ``input_tokens`` and ``output_tokens``.

    OpenAI's ``input_tokens`` include its cache reads and writes (broken down
    in ``input_tokens_details``); Anthropic's leave them out (reported beside
    it, as ``cache_*_input_tokens``). Both ``output_tokens`` include the
    reasoning (OpenAI's ``reasoning_tokens``, Anthropic's ``thinking_tokens``,
    in ``output_tokens_details``). An API reports only its own fields, so one
    reading serves both.
    """
    cached = _tokens(usage, "input_tokens_details", "cached_tokens")
    writes = _tokens(usage, "input_tokens_details", "cache_write_tokens")
    reasoning = _tokens(usage, "output_tokens_details", "reasoning_tokens") + _tokens(
        usage, "output_tokens_details", "thinking_tokens"
    )
    return ResponseUsage(
        _model(model),
        _remainder(usage, "input_tokens", cached + writes),
        _remainder(usage, "output_tokens", reasoning),
        cached_input_tokens=cached + _tokens(usage, "cache_read_input_tokens"),
        reasoning_tokens=reasoning,
        cache_write_tokens=writes + _tokens(usage, "cache_creation_input_tokens"),
    )


def _gemini(metadata: Any, model: Any) -> ResponseUsage:
    """Google GenAI: ``prompt_token_count`` includes the cached content; tool-use prompts are input too."""
    cached = _tokens(metadata, "cached_content_token_count")
    return ResponseUsage(
        _model(model),
        _remainder(metadata, "prompt_token_count", cached) + _tokens(metadata, "tool_use_prompt_token_count"),
        _tokens(metadata, "candidates_token_count"),
        cached_input_tokens=cached,
        reasoning_tokens=_tokens(metadata, "thoughts_token_count"),
    )


def _remainder(usage: Any, name: str, part: int) -> int:
    """``usage.<name>`` less ``part`` it includes; a part larger than the whole is refused."""
    whole = _tokens(usage, name)
    if part > whole:
        raise ArgumentError(f"the response's {name} ({whole}) is smaller than the part of it reported ({part})")
    return whole - part


def _model(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
