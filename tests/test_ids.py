"""Ids made by one process sort in the order they were made, even within one millisecond."""

from __future__ import annotations

import re

import pytest

from flask_baton import ids
from flask_baton.ids import new_id, new_ids, short_id


def test_ids_made_in_a_burst_strictly_increase_and_keep_distinct_short_ids() -> None:
    made = [new_id() for _ in range(5000)]

    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in made)
    same_millisecond = [i for i in made if i[:12] == made[0][:12]]
    assert len({short_id(i) for i in same_millisecond}) == len(same_millisecond)


def test_a_clock_stepping_back_does_not_make_an_older_looking_id(monkeypatch: pytest.MonkeyPatch) -> None:
    before = new_id()
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_000_000)  # 1970

    after = new_id()

    assert after > before and after[:12] == before[:12]


def test_the_65537th_id_of_one_millisecond_borrows_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_last", (5, (0xFFFF << 64) | 7))
    monkeypatch.setattr(ids.time, "time_ns", lambda: 5_000_000)

    made = new_id()

    assert made[:12] == f"{6:012x}" and made > f"{5:012x}{(0xFFFF << 64) | 7:020x}"


def test_ids_made_at_once_continue_the_one_by_one_sequence() -> None:
    before = new_id()
    batch = new_ids(20_000)
    after = new_id()

    made = [before, *batch, after]
    assert made == sorted(made) and len(set(made)) == len(made)
    same_millisecond = [i for i in batch if i[:12] == batch[0][:12]]
    assert len({short_id(i) for i in same_millisecond}) == len(same_millisecond)
