"""What the documentation tests read and stand in for: fenced blocks, and an offline chat client.

The documentation is README.md and the Markdown pages of docs/ (MyST, so a
fence's info string may be a directive such as ``{toctree}``). Only the
fences matter here: which language, which lines, under which heading, and
whether a ``<!-- not-run: why -->`` marker sits directly above.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"

FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>.*)$")
NOT_RUN = re.compile(r"^\s*<!--\s*not-run:(?P<why>.*?)-->\s*$")
FILE_LINE = re.compile(r"^# (?P<name>[\w./-]+\.py)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown document."""

    path: Path
    language: str  # the info string's first word: "python", "sh", "{toctree}", ""
    code: str
    line: int  # the document's line of the block's first line of code
    heading: str  # the nearest heading above it
    not_run: str | None  # the why of a not-run marker above it

    @property
    def file_name(self) -> str | None:
        """The file this block is, when its first line names one (``# myapp.py``)."""
        first = self.code.splitlines()[0] if self.code else ""
        match = FILE_LINE.match(first)
        return match["name"] if match else None

    @property
    def runs(self) -> bool:
        """A python block that is not a file and has no not-run marker: the tests execute it."""
        return self.language == "python" and self.file_name is None and self.not_run is None

    @property
    def where(self) -> str:
        """``docs/events.md:42, under 'Events and telemetry'``, for messages."""
        return f"{self.path.relative_to(ROOT)}:{self.line}, under {self.heading!r}"


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of the Markdown file ``path``, dedented by its fence's indent."""
    blocks: list[Block] = []
    lines = path.read_text().splitlines()
    heading = ""
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if fence is None:
            if lines[index].startswith("#"):
                heading = lines[index].lstrip("#").strip()
            index += 1
            continue
        indent = fence["indent"]
        try:
            end = lines.index(f"{indent}```", index + 1)
        except ValueError:
            raise AssertionError(f"{path.relative_to(ROOT)}:{index + 1}: a fence that never closes") from None
        marker = NOT_RUN.match(lines[index - 1]) if index else None
        code = "\n".join(line[len(indent) :] for line in lines[index + 1 : end]) + "\n"
        language = (fence["info"].split() or [""])[0]
        blocks.append(Block(path, language, code, index + 2, heading, marker["why"].strip() if marker else None))
        index = end + 1
    return blocks


def documents() -> list[Path]:
    """README.md and every Markdown page of docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def pages_with_examples() -> list[Path]:
    """The docs/ pages with at least one python block the tests run."""
    return [page for page in sorted(DOCS.glob("*.md")) if any(block.runs for block in fenced_blocks(page))]


class OfflineChat:
    """Stands in for ``openai.OpenAI()``: the same call, and a real ``ChatCompletion`` of the SDK, no network.

    Its answer is the five longest words of the prompt, one per line; its usage
    counts words as tokens, a quarter of them cached.
    """

    def __init__(self) -> None:
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))
        self.calls: list[str] = []

    def _create(
        self,
        *,
        model: str,
        messages: list[dict[str, str]],
        timeout: float,
        stream: bool = False,
        stream_options: dict[str, bool] | None = None,
    ) -> Any:
        self.calls.append(model)
        words = {w.strip(".,:;()[]{}\"'`").lower() for w in messages[-1]["content"].split()} - {""}
        answer = sorted(words, key=lambda w: (-len(w), w))[:5]
        prompt_tokens = len(messages[-1]["content"].split())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(answer),
            "prompt_tokens_details": {"cached_tokens": prompt_tokens // 4},
        }
        if stream:
            return self._chunks(model, answer, usage if (stream_options or {}).get("include_usage") else None)
        from openai.types.chat import ChatCompletion

        return ChatCompletion.model_validate(
            {
                "id": f"chatcmpl-{len(self.calls)}",
                "object": "chat.completion",
                "created": 1_760_000_000,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "\n".join(answer)},
                    }
                ],
                "usage": {**usage, "total_tokens": prompt_tokens + len(answer)},
            }
        )

    @staticmethod
    def _chunks(model: str, answer: list[str], usage: dict[str, Any] | None) -> Iterator[Any]:
        """``stream=True``: chat-completion chunks, a word each, then the usage chunk if asked for."""

        def chunk(delta: dict[str, str], finish: str | None = None) -> Any:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return _as_object({"model": model, "choices": [choice], "usage": None})

        yield chunk({"role": "assistant", "content": ""})
        for index, word in enumerate(answer):
            yield chunk({"content": word if index == 0 else "\n" + word})
        yield chunk({}, "stop")
        if usage is not None:
            yield _as_object({"model": model, "choices": [], "usage": usage})


def _as_object(value: Any) -> Any:
    if isinstance(value, dict):
        return SimpleNamespace(**{key: _as_object(item) for key, item in value.items()})
    if isinstance(value, list):
        return [_as_object(item) for item in value]
    return value
