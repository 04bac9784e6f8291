"""Big workflows on the dashboard as pure functions: folding, critical path, step filter, timeline."""

from __future__ import annotations

from typing import NamedTuple

from flask_baton.dashboard.critical_path import Timing, critical_path
from flask_baton.dashboard.explore import PAGE_ROWS, Explore, focus_label, steps_page
from flask_baton.dashboard.folding import CHAIN, CHAIN_OVER, STEP, TWINS, chain_runs, fold, node_key
from flask_baton.dashboard.layout import layered_layout
from flask_baton.dashboard.timeline import (
    MOST_TICKS,
    QUEUED,
    RUNNING,
    WAITING,
    Span,
    merged,
    run_spans,
    step_spans,
    timeline_view,
)
from flask_baton.records import AttemptRecord
from flask_baton.states import AttemptOutcome, StepState

FAILED_ITEMS = (17, 123, 256)


def fan_and_chain(width: int = 300, length: int = 50) -> list[tuple[str, tuple[str, ...]]]:
    """The issue's big workflow: split → item:000..item:299 → merge → step:000 → … → step:049."""
    steps = [("split", ())]
    steps += [(f"item:{i:03d}", ("split",)) for i in range(width)]
    steps.append(("merge", tuple(f"item:{i:03d}" for i in range(width))))
    previous = "merge"
    for i in range(length):
        steps.append((f"step:{i:03d}", (previous,)))
        previous = f"step:{i:03d}"
    return steps


def chain(length: int, prefix: str = "c", root: str = "root") -> list[tuple[str, tuple[str, ...]]]:
    steps, previous = [], root
    for i in range(length):
        steps.append((f"{prefix}{i:02d}", (previous,)))
        previous = f"{prefix}{i:02d}"
    return steps


class Step(NamedTuple):
    """A step as the table and the timeline read it (what ``StepOutline`` has)."""

    step_name: str
    state: StepState
    deps: tuple[str, ...] = ()
    scheduled_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None


# -- folding -----------------------------------------------------------------------------


def test_a_wide_fan_out_and_a_long_chain_each_fold_into_one_node() -> None:
    folding = fold(fan_and_chain())
    assert [(node.kind, len(node.members)) for node in folding.nodes] == [
        (STEP, 1),
        (TWINS, 300),
        (STEP, 1),
        (CHAIN, 50),
    ]
    twins, chained = folding.nodes[1], folding.nodes[3]
    assert chained.members == tuple(f"step:{i:03d}" for i in range(50))
    assert focus_label(chained.members, CHAIN) == "step:000 → … → step:049 (50 steps)"
    assert focus_label(twins.members, TWINS) == "item:000 … item:299 (300 steps)"
    assert folding.node_of["step:017"] == chained.key and folding.node_of["item:123"] == twins.key
    assert twins.key.startswith("g") and chained.key.startswith("c")


def test_the_big_workflow_fits_in_four_columns_instead_of_fifty_three() -> None:
    steps = fan_and_chain()
    folded = layered_layout(steps, fold(steps))
    assert len(folded.nodes) == 4 and folded.width < 1000 and folded.height < 100
    unfolded = layered_layout(steps, fold(steps, chain_over=len(steps)))
    assert len(unfolded.nodes) == 53 and unfolded.width > 12_000  # what the page drew before


def test_a_chain_up_to_the_limit_is_drawn_step_by_step() -> None:
    short = [("root", ()), *chain(CHAIN_OVER)]
    assert chain_runs(short) == []
    assert all(node.kind == STEP for node in fold(short).nodes)
    longer = [("root", ()), *chain(CHAIN_OVER + 1)]
    assert [len(run) for run in chain_runs(longer)] == [CHAIN_OVER + 1]


def test_a_chain_ends_where_a_step_forks_and_starts_again_after_it() -> None:
    steps = [("root", ()), *chain(12, "c")]
    steps += [("fork", ("c11",)), ("d", ("c11",)), *chain(12, "e", root="d")]
    runs = chain_runs(steps)
    # c00..c11 end at c11 (two dependents); d starts a run (its dep forks) that e00..e11 continue.
    assert runs == [tuple(f"c{i:02d}" for i in range(12)), ("d", *(f"e{i:02d}" for i in range(12)))]


def test_a_join_is_never_part_of_a_chain() -> None:
    steps = [("a", ()), ("b", ()), ("join", ("a", "b")), *chain(12, root="join")]
    (run,) = chain_runs(steps)
    assert run[0] == "c00" and "join" not in run


def test_an_opened_chain_is_drawn_step_by_step_inside_a_frame() -> None:
    steps = fan_and_chain()
    key = fold(steps).nodes[3].key
    folding = fold(steps, {key})
    assert [chain.key for chain in folding.opened] == [key]
    assert folding.members(key) == tuple(f"step:{i:03d}" for i in range(50))  # still known by its key
    layout = layered_layout(steps, folding)
    assert len(layout.nodes) == 53
    (frame,) = layout.frames
    chained = [node for node in layout.nodes if node.members[0].startswith("step:")]
    assert len(chained) == 50 and len({node.y for node in chained}) == 1  # one straight row
    for node in chained:
        assert frame.x < node.x and node.x + node.width < frame.x + frame.width
        assert frame.y + 18 <= node.y and node.y + node.height < frame.y + frame.height  # room for its label
    assert layout.height >= frame.y + frame.height


def test_folding_the_same_structure_twice_gives_the_same_drawing() -> None:
    steps = fan_and_chain()
    first, second = layered_layout(steps), layered_layout(list(steps))
    assert [(n.key, n.x, n.y) for n in first.nodes] == [(n.key, n.x, n.y) for n in second.nodes]
    assert [e.path() for e in first.edges] == [e.path() for e in second.edges]


def test_members_are_found_by_a_folds_key_or_a_steps_key() -> None:
    folding = fold(fan_and_chain())
    twins = folding.nodes[1]
    assert folding.members(twins.key) == twins.members
    assert folding.members(node_key("item:017")) == ("item:017",)  # a step inside a fold
    assert folding.members(node_key("merge")) == ("merge",)
    assert folding.members("cdeadbeef") is None


# -- the critical path ----------------------------------------------------------------------


def test_the_critical_path_follows_the_dependency_that_ended_last() -> None:
    timings = [
        Timing("fetch", (), 1.0),
        Timing("summarize", ("fetch",), 9.0),
        Timing("keywords", ("fetch",), 3.0),
        Timing("compile", ("summarize", "keywords"), 12.0),
        Timing("publish", ("compile",), 13.0),
        Timing("side", ("fetch",), 2.0),
    ]
    assert critical_path(timings) == ("fetch", "summarize", "compile", "publish")


def test_the_critical_path_ends_at_the_last_run_to_end_and_skips_steps_that_never_ran() -> None:
    timings = [
        Timing("a", (), 1.0),
        Timing("b", ("a",), 5.0),
        Timing("c", ("a",), 7.0),  # still running: the caller passes now as its end
        Timing("d", ("b", "c"), None),  # has not run
    ]
    assert critical_path(timings) == ("a", "c")
    assert critical_path([Timing("x", (), None)]) == ()


def test_ties_on_the_critical_path_go_to_the_first_declared() -> None:
    timings = [Timing("a", (), 2.0), Timing("b", (), 2.0), Timing("c", ("b", "a"), 3.0)]
    assert critical_path(timings) == ("b", "c")
    assert critical_path([Timing("a", (), 2.0), Timing("b", (), 2.0)]) == ("a",)


# -- the step table's view ------------------------------------------------------------------


def test_a_pages_query_is_read_leniently_and_written_back_the_same() -> None:
    explore = Explore.from_args(
        {"open": "c1a2b,BAD KEY,c1a2b", "node": "g00ff", "state": "discarded", "q": " item ", "page": "3"}
    )
    assert explore == Explore(("c1a2b",), "g00ff", "discarded", "item", 3)
    assert Explore.from_args(dict(explore.args())) == explore
    assert explore.query() == "?open=c1a2b&node=g00ff&state=discarded&q=item&page=3"
    assert Explore.from_args({"state": "exploded", "page": "-2", "node": "<script>"}) == Explore()
    assert explore.filtered(state=None) == "?open=c1a2b&node=g00ff&q=item"  # back to the first page
    assert explore.toggled("c1a2b") == () and explore.toggled("c9") == ("c1a2b", "c9")


def _items() -> list[Step]:
    steps = [Step("split", StepState.COMPLETED)]
    for i in range(300):
        state = StepState.DISCARDED if i in FAILED_ITEMS else StepState.COMPLETED
        steps.append(Step(f"item:{i:03d}", state, ("split",)))
    steps.append(Step("merge", StepState.EXECUTING, tuple(s.step_name for s in steps[1:])))
    return steps


def test_a_folded_nodes_steps_are_listed_failures_first() -> None:
    steps = _items()
    folding = fold([(s.step_name, s.deps) for s in steps])
    twins = folding.nodes[1]
    page = steps_page(steps, Explore(node=twins.key), folding)
    assert page.names[:3] == ("item:017", "item:123", "item:256")
    assert page.names[3:6] == ("item:000", "item:001", "item:002")  # then in insertion order
    assert (page.matched, page.total, page.pages, len(page.names)) == (300, 302, 6, PAGE_ROWS)
    assert page.focus_label == "item:000 … item:299 (300 steps)"
    assert dict(page.counts) == {"discarded": 3, "completed": 297}


def test_the_table_filters_by_state_and_by_name_and_pages_what_is_left() -> None:
    steps = _items()
    folding = fold([(s.step_name, s.deps) for s in steps])
    discarded = steps_page(steps, Explore(state="discarded"), folding)
    assert discarded.names == ("item:017", "item:123", "item:256") and discarded.pages == 1
    assert dict(discarded.counts)["completed"] == 298  # the chips count what the other filters let through
    named = steps_page(steps, Explore(name="ITEM:12"), folding)
    assert named.names == tuple(f"item:{i}" for i in range(120, 130))
    last = steps_page(steps, Explore(page=99), folding)
    assert last.page == 7 and last.names == ("item:299", "merge") and last.first == 301
    nothing = steps_page(steps, Explore(name="nope"), folding)
    assert nothing.names == () and nothing.first == 0 and nothing.pages == 1


# -- the timeline ---------------------------------------------------------------------------


def test_a_steps_row_gives_its_queue_its_last_run_and_its_wait_to_run_again() -> None:
    now = 100.0
    done = Step("a", StepState.COMPLETED, scheduled_at=10.0, started_at=12.0, finished_at=20.0)
    assert step_spans(done, now) == [Span(QUEUED, 10.0, 12.0, "completed"), Span(RUNNING, 12.0, 20.0, "completed")]
    running = Step("b", StepState.EXECUTING, scheduled_at=30.0, started_at=30.0)
    assert step_spans(running, now) == [Span(RUNNING, 30.0, now, "executing")]
    retrying = Step("c", StepState.RETRYABLE, scheduled_at=140.0, started_at=90.0)
    assert [s.kind for s in step_spans(retrying, now)] == [RUNNING, WAITING]
    assert step_spans(retrying, now)[1].end == 140.0
    queued = Step("d", StepState.AVAILABLE, scheduled_at=95.0)
    assert step_spans(queued, now) == [Span(QUEUED, 95.0, now, "available")]
    assert step_spans(Step("e", StepState.PENDING), now) == []
    assert step_spans(Step("f", StepState.CANCELLED, finished_at=50.0), now) == []


def _run(outcome: AttemptOutcome, started: float, finished: float) -> AttemptRecord:
    return AttemptRecord("w", "n", "s", 1, outcome, None, started, finished, None)


def test_runs_kept_before_a_steps_row_add_each_earlier_try_and_its_wait() -> None:
    retried = Step("a", StepState.COMPLETED, scheduled_at=15.0, started_at=16.0, finished_at=20.0)
    assert run_spans(retried, [_run(AttemptOutcome.FAILED, 10.0, 12.0)], 100.0) == [
        Span(RUNNING, 10.0, 12.0, "retryable"),
        Span(WAITING, 12.0, 15.0, "retryable"),  # its retry delay
        Span(QUEUED, 15.0, 16.0, "completed"),
        Span(RUNNING, 16.0, 20.0, "completed"),
    ]
    snoozing = Step("b", StepState.SNOOZED, scheduled_at=40.0, started_at=30.0)  # its row holds the last snooze
    runs = [_run(AttemptOutcome.SNOOZED, 20.0, 21.0), _run(AttemptOutcome.SNOOZED, 30.0, 31.0)]
    assert run_spans(snoozing, runs, 35.0) == [
        Span(RUNNING, 20.0, 21.0, "snoozed"),
        Span(WAITING, 21.0, 30.0, "snoozed"),
        Span(RUNNING, 30.0, 31.0, "snoozed"),
        Span(WAITING, 31.0, 40.0, "snoozed"),  # until it is due again
    ]
    assert run_spans(retried, [], 100.0) == step_spans(retried, 100.0)


def test_intervals_merge_where_they_touch_overlap_or_are_closer_than_the_slack() -> None:
    assert merged([(5, 6), (1, 3), (2, 4), (4, 4.5), (7, 8)]) == [(1, 4.5), (5, 6), (7, 8)]
    assert merged([(5, 6), (1, 3), (2, 4), (4, 4.5), (7, 8)], slack=0.5) == [(1, 6), (7, 8)]


def test_the_timeline_folds_like_the_graph_and_outlines_the_critical_path() -> None:
    steps = [Step("split", StepState.COMPLETED, (), 0.0, 0.0, 1.0)]
    for i in range(30):
        steps.append(Step(f"item:{i:02d}", StepState.COMPLETED, ("split",), 1.0, 1.0 + i * 0.1, 3.0 + i * 0.1))
    steps.append(Step("merge", StepState.COMPLETED, tuple(f"item:{i:02d}" for i in range(30)), 6.0, 6.0, 7.0))
    previous = "merge"
    for i in range(10):
        steps.append(Step(f"step:{i}", StepState.COMPLETED, (previous,), 7.0 + i, 7.0 + i, 8.0 + i))
        previous = f"step:{i}"
    steps.append(Step("late", StepState.PENDING, ("split",)))
    folding = fold([(s.step_name, s.deps) for s in steps])
    spans = {s.step_name: step_spans(s, 20.0) for s in steps}
    view = timeline_view(steps, spans, folding, Explore(), 0.0, 17.0)

    labels = [row.label for row in view.rows]
    assert labels == ["split", "item:00 … item:29 (30 steps)", "merge", "step:0 → … → step:9 (10 steps)", "late"]
    rows = {row.label: row for row in view.rows}
    fan = rows["item:00 … item:29 (30 steps)"]
    assert [bar.kind for bar in fan.bars] == [QUEUED, RUNNING]  # 30 overlapping queues and runs, one bar each
    assert all(row.critical for row in view.rows[:4]) and not rows["late"].critical
    assert fan.critical[0].width < fan.bars[0].width  # only item:29, the last to end, is on the path
    assert len(view.connectors) == 3  # split → item:29 → merge → step:0, each between two rows
    assert view.critical.startswith("Critical path: split → step:9, 13 steps")
    assert 2 <= len(view.ticks) <= MOST_TICKS + 1 and view.ticks[0].label == "0 ms"
    assert rows["step:0 → … → step:9 (10 steps)"].href == f"?node={folding.nodes[3].key}"


def test_a_timeline_with_nothing_run_yet_has_rows_but_no_critical_path() -> None:
    steps = [Step("a", StepState.PENDING), Step("b", StepState.PENDING, ("a",))]
    folding = fold([(s.step_name, s.deps) for s in steps])
    view = timeline_view(steps, {}, folding, Explore(), 100.0, 100.0)
    assert [row.bars for row in view.rows] == [(), ()] and view.critical == "" and view.connectors == ()
