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
