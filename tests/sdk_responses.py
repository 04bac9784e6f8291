"""Real response objects of the installed LLM SDKs, built offline from their own model classes.

Each is what the SDK's client would return for one call; ``READ`` is what
``flask_baton.sdk_usage`` must make of it (disjoint counts) and ``COST`` its
price in ``DEFAULT_PRICING`` (the model names are dated snapshots, as the
APIs answer, priced as their undated names).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_baton.sdk_usage import ResponseUsage


def openai_chat(usage: dict[str, Any] | None = None) -> Any:
    """``client.chat.completions.create(...)`` of a reasoning model: cached prompt, reasoning tokens."""
    from openai.types.chat import ChatCompletion

    default = {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 192},
    }
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_760_000_000,
            "model": "o4-mini-2025-04-16",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Paris"}}],
            "usage": default if usage is None else usage,
        }
    )


def openai_chat_without_usage() -> Any:
    """A chat completion with ``usage`` null, as some proxies and streamed chunks give."""
    from openai.types.chat import ChatCompletion

    return ChatCompletion.model_validate({**openai_chat().model_dump(), "usage": None})


def openai_responses() -> Any:
    """``client.responses.create(...)``: input partly served from the cache."""
    from openai.types.responses import Response

    return Response.model_validate(
        {
            "id": "resp_1",
            "object": "response",
            "created_at": 1_760_000_000,
            "model": "gpt-4.1-mini-2025-04-14",
            "output": [
                {
                    "type": "message",
                    "id": "msg_1",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Paris", "annotations": []}],
                }
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": 900,
                "input_tokens_details": {"cached_tokens": 512, "cache_write_tokens": 0},
                "output_tokens": 80,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 980,
            },
        }
    )


def anthropic_message() -> Any:
    """``client.messages.create(...)`` with prompt caching (a read and a write) and extended thinking."""
    import anthropic

    return anthropic.types.Message(
        id="msg_1",
        type="message",
        role="assistant",
        model="claude-sonnet-4-20250514",
        content=[{"type": "text", "text": "Paris"}],
        stop_reason="end_turn",
        stop_sequence=None,
        usage=anthropic.types.Usage(
            input_tokens=50,
            cache_read_input_tokens=8000,
            cache_creation_input_tokens=2000,
            output_tokens=400,
            output_tokens_details={"thinking_tokens": 150},
        ),
    )


def gemini_response() -> Any:
    """Google GenAI's ``client.models.generate_content(...)`` of a thinking model, with cached content."""
    from google.genai import types

    return types.GenerateContentResponse(
        model_version="gemini-2.5-flash",
        candidates=[types.Candidate(content=types.Content(role="model", parts=[types.Part(text="Paris")]))],
        usage_metadata=types.GenerateContentResponseUsageMetadata(
            prompt_token_count=3000,
            cached_content_token_count=2048,
            candidates_token_count=120,
            thoughts_token_count=800,
            total_token_count=3920,
        ),
    )


#: name -> the response, for the step that records them (its args are JSON: names).
RESPONSES: dict[str, Callable[[], Any]] = {
    "openai-chat": openai_chat,
    "openai-responses": openai_responses,
    "anthropic": anthropic_message,
    "gemini": gemini_response,
    "no-usage": openai_chat_without_usage,
    "a-tuple": lambda: ("gpt-4o", 10, 5),
}

READ = {
    "openai-chat": ResponseUsage("o4-mini-2025-04-16", 176, 108, cached_input_tokens=1024, reasoning_tokens=192),
    "openai-responses": ResponseUsage("gpt-4.1-mini-2025-04-14", 388, 80, cached_input_tokens=512),
    "anthropic": ResponseUsage(
        "claude-sonnet-4-20250514", 50, 250, cached_input_tokens=8000, reasoning_tokens=150, cache_write_tokens=2000
    ),
    "gemini": ResponseUsage("gemini-2.5-flash", 952, 120, cached_input_tokens=2048, reasoning_tokens=800),
}

#: USD, from DEFAULT_PRICING (per million tokens): reasoning at the output price,
#: Anthropic's cache writes at its listed cache_write price.
COST = {
    "openai-chat": (176 * 1.10 + 1024 * 0.275 + 108 * 4.40 + 192 * 4.40) / 1e6,
    "openai-responses": (388 * 0.40 + 512 * 0.10 + 80 * 1.60) / 1e6,
    "anthropic": (50 * 3.00 + 8000 * 0.30 + 2000 * 3.75 + 250 * 15.00 + 150 * 15.00) / 1e6,
    "gemini": (952 * 0.30 + 2048 * 0.075 + 120 * 2.50 + 800 * 2.50) / 1e6,
}
