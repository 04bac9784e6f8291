"""Context capture: the full prompt and response of an LLM call, for debugging.

``job.capture_context(messages=..., response=...)`` stores both, as JSON, in
``baton_debug_logs`` when ``BATON_DEBUG_CAPTURE`` is on, and does nothing
otherwise. Each of the two is capped at ``BATON_DEBUG_CAPTURE_MAX_BYTES``
bytes of UTF-8 JSON; a longer one is cut there and the row marked
``truncated``. The sweep deletes rows older than ``BATON_DEBUG_LOG_MAX_AGE``.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from .store.usage import insert_capture

if TYPE_CHECKING:
    from .store import Store


def _encode(value: Any, cap: int) -> tuple[str, bool]:
    """JSON for ``value`` (``repr`` for what JSON cannot hold), cut to ``cap`` bytes."""
    text = json.dumps(value, default=repr, ensure_ascii=False)
    raw = text.encode()
    if len(raw) <= cap:
        return text, False
    return raw[:cap].decode(errors="ignore"), True


def capture_context(
    db: Store,
    cap: int,
    *,
    workflow_id: str,
    node_id: str,
    step_name: str,
    attempt: int,
    messages: Any,
    response: Any,
) -> bool:
    """Store one call's context; return True if anything was cut."""
    messages_text, cut_messages = _encode(messages, cap)
    response_text, cut_response = _encode(response, cap)
    truncated = cut_messages or cut_response
    insert_capture(
        db,
        {
            "workflow_id": workflow_id,
            "node_id": node_id,
            "step_name": step_name,
            "attempt": attempt,
            "messages": messages_text,
            "response": response_text,
            "truncated": truncated,
            "created_at": time.time(),
        },
    )
    return truncated
