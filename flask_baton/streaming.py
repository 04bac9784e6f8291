"""Text a running step streams (``job.stream``), published as it comes.

Each piece becomes a ``workflow_step_streamed`` event on the workflow's
topic; nothing is stored per piece. Over Redis a piece is published at
once (the transport's own short linger shares round trips). The database
feed is a table, so there a stream holds its pieces for up to
``BATON_STREAM_FLUSH_SECONDS`` and writes what came in as one event, one
row, in a short transaction of its own: a step streaming 200 tokens a
second writes ten rows a second, not 200.

When the step function returns or raises, the runner closes the stream:
what is held is published before the step's outcome is recorded, so a
subscriber hears the last piece before the step's completion. Pieces
written after that (a step that ran past its timeout) are dropped.

``text_of`` reads the text of one chunk of a model SDK's stream by its
shape, without importing any SDK, so ``job.stream_from`` takes OpenAI,
Anthropic and Gemini streams, or plain strings, as they come.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .errors import ArgumentError
from .events import EVENT_ID, STEP_STREAMED, Event
from .ids import new_id

logger = logging.getLogger("flask_baton")

#: Publishes streamed events; the runner's choice of path per transport (``dispatch.make_job``).
Send = Callable[[Sequence[Event]], None]


class StepStream:
    """The text one attempt of one step streams; safe to write from several threads."""

    def __init__(self, *, workflow_id: str, step_name: str, attempt: int, send: Send, hold: float) -> None:
        self._where = {"workflow_id": workflow_id, "step_name": step_name, "attempt": attempt}
        self._send = send
        self._hold = hold
        self._lock = threading.Lock()  # guards everything below; held while sending, so events leave in order
        self._held: list[str] = []
        self._timer: threading.Timer | None = None
        self._seq = 0
        self._offset = 0
        self._closed = False

    def write(self, text: str) -> None:
        """Publish ``text`` now, or within the hold interval (database feed)."""
        if not isinstance(text, str):
            raise ArgumentError(f"job.stream takes a str, got {type(text).__name__}: {text!r:.80}")
        if not text:
            return
        with self._lock:
            if self._closed:
                return
            self._held.append(text)
            if self._hold <= 0:
                self._publish()
            elif self._timer is None:
                self._timer = threading.Timer(self._hold, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Publish what is held."""
        with self._lock:
            self._publish()

    def close(self) -> None:
        """Publish what is held; later writes are dropped."""
        with self._lock:
            self._publish()
            self._closed = True

    def _publish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._held:
            return
        text, self._held = "".join(self._held), []
        self._seq += 1
        payload = {
            EVENT_ID: new_id(),
            **self._where,
            "seq": self._seq,
            "offset": self._offset,
            "text": text,
            "timestamp": time.time(),
        }
        self._offset += len(text)
        try:
            self._send([Event(STEP_STREAMED, payload)])
        except Exception:
            # Streaming is a view of the work, not the work: the step goes on.
            logger.exception("could not publish streamed text of step %r", self._where["step_name"])


def collect(stream: StepStream, chunks: Iterable[Any]) -> str:
    """Write the text of every chunk to ``stream``; return all of it."""
    pieces = []
    for chunk in chunks:
        text = text_of(chunk)
        if text:
            stream.write(text)
            pieces.append(text)
    return "".join(pieces)


def text_of(chunk: Any) -> str:
    """The text of one streamed chunk, by its shape ("" for chunks that carry none).

    - a ``str``: itself;
    - OpenAI chat completions: ``chunk.choices[0].delta.content``;
    - Anthropic message stream events: ``delta.text`` of a ``content_block_delta``;
    - Gemini: ``chunk.text``.

    Objects or dicts alike (``model_dump()`` output, raw JSON).
    """
    if isinstance(chunk, str):
        return chunk
    choices = _field(chunk, "choices")
    if choices is not None:
        delta = _field(choices[0], "delta") if choices else None
        return _text(chunk, _field(delta, "content"))
    kind = _field(chunk, "type")
    if kind is not None:
        delta = _field(chunk, "delta")
        return _text(chunk, _field(delta, "text")) if kind == "content_block_delta" else ""
    text = _field(chunk, "text")
    if text is not None or hasattr(chunk, "text"):
        return _text(chunk, text)
    raise ArgumentError(
        f"cannot read text from a streamed {type(chunk).__name__}: expected a str, an OpenAI chunk "
        f"(choices[0].delta.content), an Anthropic event (content_block_delta) or a Gemini chunk (.text)"
    )


def _field(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``; None when it has neither."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _text(chunk: Any, text: Any) -> str:
    if text is None:
        return ""
    if not isinstance(text, str):
        raise ArgumentError(f"the text of a streamed {type(chunk).__name__} is a {type(text).__name__}, not a str")
    return text
