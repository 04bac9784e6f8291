"""Identifiers for workflows and steps.

Ids are made by the process that inserts, so a 10,000-step workflow is written
with one ``executemany`` and no ``RETURNING`` round trip. They start with the
creation time in milliseconds, so they sort by age on every database and keep
index pages hot, like UUIDv7.

Within a process they also strictly increase (RFC 9562's "monotonic random"):
two workflows started in the same millisecond would otherwise sort by their
random tail, and "newest first" (the dashboard's index, ``list_workflows``)
would show them in a coin-flip order. Ids made by different processes in the
same millisecond still sort by chance; nothing relies on their order.
"""

from __future__ import annotations

import os
import threading
import time

_RANDOM_BITS = 80
_RANDOM_BYTES = _RANDOM_BITS // 8
#: Within one millisecond each id adds one to the top 16 random bits (so
#: ``short_id`` still differs) and draws the 64 below afresh.
_STEP = 1 << 64

_lock = threading.Lock()
_last = (0, 0)  # (milliseconds, random part) of the id made last


def new_id() -> str:
    """Return a 32-character, time-ordered, random hex id, greater than the last one this process made."""
    return new_ids(1)[0]


def new_ids(count: int) -> list[str]:
    """``count`` ids in ``new_id``'s order, drawn under one lock from one read of the random source.

    An insert of a 10,000-step workflow takes its steps' ids at once: an id
    each cost it twice the time (the lock and ``os.urandom`` per id).
    """
    global _last
    randoms = os.urandom(count * _RANDOM_BYTES)
    now = time.time_ns() // 1_000_000
    ids = []
    with _lock:
        last_millis, last_random = _last
        for offset in range(0, count * _RANDOM_BYTES, _RANDOM_BYTES):
            millis, fresh = now, int.from_bytes(randoms[offset : offset + _RANDOM_BYTES], "big")
            if millis <= last_millis:
                # Same millisecond, or the clock stepped back: count on from the last id.
                millis, fresh = last_millis, (last_random & ~(_STEP - 1)) + _STEP + (fresh & (_STEP - 1))
                if fresh >> _RANDOM_BITS:
                    # 65,536 ids in one millisecond: borrow the next one.
                    millis, fresh = last_millis + 1, fresh & (_STEP - 1)
            last_millis, last_random = millis, fresh
            ids.append(f"{millis:012x}{fresh:020x}")
        _last = (last_millis, last_random)
    return ids


#: Characters of an id the dashboard shows: the 12 of its millisecond and 4
#: random ones, so workflows inserted in the same millisecond still show
#: different short ids, which the CLI and the dashboard's search take as a
#: unique prefix.
SHORT_ID_CHARS = 16


def short_id(full_id: str) -> str:
    """The start of an id that people read and copy (``SHORT_ID_CHARS``)."""
    return full_id[:SHORT_ID_CHARS]
