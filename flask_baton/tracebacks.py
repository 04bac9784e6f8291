"""Tracebacks as the author of a step wants to read them: their frames, not flask_baton's.

A step's error is the traceback its consumer formatted, starting in
flask_baton's runner and, when the step called into flask_baton (``job.result``)
or Huey, passing through them again. ``trim`` folds each run of such frames
into one line saying how many were left out, and keeps everything else as
written: the step's own frames, with their source and caret lines, chained
exceptions, the exception itself. Pure text in, text out; the dashboard
shows the result and keeps the whole traceback one click away.

A frame is flask_baton's or Huey's when its file is one of that package's
modules (``…/flask_baton/runner.py``), wherever the consumer that wrote it
had it installed, so a project checked out in a folder named ``flask_baton``
keeps its own frames.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

#: A frame's first line: ``  File "path", line 12, in name``, after any exception-group ``|`` margin.
_FRAME = re.compile(r'^(?P<margin>(?:\s*\|)*)(?P<indent>\s*)File "(?P<path>[^"]*)", line \d+, in ')
_MARGIN = re.compile(r"^(?:\s*\|)*")
#: Packages whose frames are folded (Huey's is the task execution around the runner).
PACKAGES = ("flask_baton", "huey")


@dataclass(frozen=True)
class Piece:
    """Consecutive lines of a trimmed traceback; ``folded``: the line that stands for frames left out."""

    text: str
    folded: bool = False


@dataclass(frozen=True)
class Trimmed:
    """A traceback with internal frames folded: its pieces in order, and how many frames were left out."""

    pieces: tuple[Piece, ...]
    hidden: int

    @property
    def text(self) -> str:
        return "".join(piece.text for piece in self.pieces)


@cache
def package_modules(package: str) -> frozenset[str]:
    """The modules of an installed package, as paths relative to it (``store/engine.py``)."""
    module = __import__(package)
    root = Path(module.__file__ or "").parent
    return frozenset(path.relative_to(root).as_posix() for path in root.rglob("*.py"))


def package_of(path: str) -> str | None:
    """The folded package (``PACKAGES``) whose module ``path`` is, or None for any other file."""
    parts = path.replace("\\", "/").split("/")
    for index in range(len(parts) - 1, -1, -1):
        name = parts[index]
        if name in PACKAGES and "/".join(parts[index + 1 :]) in package_modules(name):
            return name
    return None


def trim(traceback: str) -> Trimmed:
    """``traceback`` with each run of flask_baton's and Huey's frames folded into one line."""
    pieces: list[Piece] = []
    run: list[str] = []  # packages of the frames folded so far in this run
    margin = indent = ""
    hidden = 0
    for frame, lines in _frames(traceback.splitlines(keepends=True)):
        package = package_of(frame.group("path")) if frame else None
        if package is not None and frame is not None:
            if not run:
                margin, indent = frame.group("margin"), frame.group("indent")
            run.append(package)
            hidden += 1
            continue
        if run:
            pieces.append(_fold(run, margin, indent))
            run = []
        pieces.append(Piece("".join(lines)))
    if run:
        pieces.append(_fold(run, margin, indent))
    return Trimmed(tuple(_merged(pieces)), hidden)


def _frames(lines: list[str]) -> Iterator[tuple[re.Match[str] | None, list[str]]]:
    """Group lines into frames (a ``File`` line and the more indented lines under it) and single other lines."""
    index = 0
    while index < len(lines):
        frame = _FRAME.match(lines[index])
        if frame is None:
            yield None, [lines[index]]
            index += 1
            continue
        depth = len(frame.group("indent"))
        body = [lines[index]]
        index += 1
        while index < len(lines) and _deeper(lines[index], depth):
            body.append(lines[index])
            index += 1
        yield frame, body


def _deeper(line: str, depth: int) -> bool:
    """Whether ``line`` (past its group margin) is indented more than ``depth``: a frame's source or carets."""
    rest = _MARGIN.sub("", line, count=1)
    stripped = rest.lstrip(" ")
    return bool(stripped.strip()) and len(rest) - len(stripped) > depth and not _FRAME.match(line)


def _fold(packages: list[str], margin: str, indent: str) -> Piece:
    names = "/".join(name for name in PACKAGES if name in packages)
    count = len(packages)
    return Piece(f"{margin}{indent}… {count} frame{'s' if count != 1 else ''} of {names} …\n", folded=True)


def _merged(pieces: Iterable[Piece]) -> Iterator[Piece]:
    """Adjacent unfolded pieces as one (fewer elements to render)."""
    pending: list[str] = []
    for piece in pieces:
        if piece.folded:
            if pending:
                yield Piece("".join(pending))
                pending = []
            yield piece
        else:
            pending.append(piece.text)
    if pending:
        yield Piece("".join(pending))
