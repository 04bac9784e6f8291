"""Identifiers for workflows and steps.

Ids are made by the process that inserts, so a 10,000-step workflow is written
with one ``executemany`` and no ``RETURNING`` round trip. They start with the
creation time in milliseconds, so they sort by age on every database and keep
index pages hot, like UUIDv7.
"""

from __future__ import annotations

import os
import time


def new_id() -> str:
    """Return a 32-character, time-ordered, random hex id."""
    millis = time.time_ns() // 1_000_000
    return f"{millis:012x}{os.urandom(10).hex()}"


#: Characters of an id the dashboard shows: the 12 of its millisecond and 4
#: random ones, so workflows inserted in the same millisecond still show
#: different short ids, which the CLI and the dashboard's search take as a
#: unique prefix.
SHORT_ID_CHARS = 16


def short_id(full_id: str) -> str:
    """The start of an id that people read and copy (``SHORT_ID_CHARS``)."""
    return full_id[:SHORT_ID_CHARS]
