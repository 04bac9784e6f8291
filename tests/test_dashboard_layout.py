"""The DAG layout (dashboard/layout.py) and the dashboard's formatting: pure functions."""

from __future__ import annotations

import time

import pytest

from flask_baton.dashboard.folding import TWINS_OVER, node_key, twin_groups
from flask_baton.dashboard.formatting import (
    error_summary,
    format_cost,
    format_count,
    format_duration,
    result_texts,
)
from flask_baton.dashboard.layout import (
    NODE_HEIGHT,
    NODE_WIDTH,
    count_crossings,
    layered_layout,
    longest_path_layers,
    order_layers,
)

DIAMOND = [
    ("fetch", []),
    ("summarize", ["fetch"]),
    ("keywords", ["fetch"]),
    ("credibility", ["fetch"]),
    ("compile", ["summarize", "keywords", "credibility"]),
]


def _overlaps(layout) -> list[tuple[str, str]]:
    found = []
    nodes = list(layout.nodes)
    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            if a.x < b.x + b.width and b.x < a.x + a.width and a.y < b.y + b.height and b.y < a.y + a.height:
                found.append((a.name, b.name))
    return found


def test_longest_path_puts_each_step_one_layer_right_of_its_deepest_dependency() -> None:
    preds = {"a": [], "b": ["a"], "c": ["b"], "d": ["a", "c"], "e": []}
    assert longest_path_layers(list(preds), preds) == {"a": 0, "b": 1, "c": 2, "d": 3, "e": 0}


def test_longest_path_refuses_a_cycle() -> None:
    with pytest.raises(ValueError, match="cycle"):
        longest_path_layers(["a", "b"], {"a": ["b"], "b": ["a"]})


def test_count_crossings_counts_pairs_of_edges_that_cross() -> None:
    assert count_crossings(["a", "b"], ["c", "d"], [("a", "c"), ("b", "d")]) == 0
    assert count_crossings(["a", "b"], ["c", "d"], [("a", "d"), ("b", "c")]) == 1
    # a complete bipartite K(3,3) drawn in order has 3 * (3 choose 2) = 9 crossings
    links = [(u, l) for u in "abc" for l in "xyz"]
    assert count_crossings(list("abc"), list("xyz"), links) == 9


def test_barycenter_ordering_untangles_crossed_edges() -> None:
    layers = [["a", "b", "c"], ["z", "y", "x"]]
    preds = {"x": ["a"], "y": ["b"], "z": ["c"]}
    succs = {"a": ["x"], "b": ["y"], "c": ["z"]}
    ordered = order_layers(layers, preds, succs)
    links = [(p, n) for n, ps in preds.items() for p in ps]
    assert count_crossings(ordered[0], ordered[1], links) == 0


def test_diamond_flows_left_to_right_with_no_overlap_and_no_crossing() -> None:
    layout = layered_layout(DIAMOND)
    by_name = {node.name: node for node in layout.nodes}
    assert [by_name[n].layer for n in ("fetch", "summarize", "keywords", "credibility", "compile")] == [0, 1, 1, 1, 2]
    assert by_name["fetch"].x < by_name["summarize"].x < by_name["compile"].x
    assert by_name["summarize"].x == by_name["keywords"].x == by_name["credibility"].x
    assert not _overlaps(layout)
    # The middle step of the three sits level with the root and the fan-in.
    middle = sorted((by_name[n] for n in ("summarize", "keywords", "credibility")), key=lambda n: n.y)[1]
    assert abs(middle.y - by_name["fetch"].y) < 1 and abs(middle.y - by_name["compile"].y) < 1
    assert len(layout.edges) == 6
    for edge in layout.edges:  # every edge leaves a right side and enters a left side
        (x0, _), (x1, _) = edge.points[0], edge.points[-1]
        assert x1 > x0
        assert edge.path().startswith("M") and " C" in edge.path()
    assert layout.width >= 3 * NODE_WIDTH and layout.height >= 3 * NODE_HEIGHT


def test_a_long_edge_is_routed_through_the_skipped_layers() -> None:
    layout = layered_layout([("a", []), ("b", ["a"]), ("c", ["b"]), ("d", ["c", "a"])])
    long_edge = next(e for e in layout.edges if (e.source, e.target) == (node_key("a"), node_key("d")))
    # two dummies (layers 1 and 2), each entered and left: 2 + 2 * 2 points
    assert len(long_edge.points) == 6
    assert " L" in long_edge.path()
    assert not _overlaps(layout)


def test_a_wide_fan_out_of_twins_collapses_into_one_group_node() -> None:
    items = [(f"item:{i}", ["split"]) for i in range(200)]
    steps = [("split", []), *items, ("total", [name for name, _ in items])]
    layout = layered_layout(steps)
    assert len(layout.nodes) == 3
    group = next(node for node in layout.nodes if node.folded)
    assert len(group.members) == 200 and group.members[0] == "item:0"
    assert layout.node_of["item:123"] == group.key
    assert len(layout.edges) == 2
    assert layout.height < 4 * NODE_HEIGHT


def test_small_fan_outs_and_distinct_steps_are_drawn_one_by_one() -> None:
    twins = [("root", [])] + [(f"t{i}", ["root"]) for i in range(TWINS_OVER)]
    assert twin_groups(twins) == []
    assert len(layered_layout(twins).nodes) == TWINS_OVER + 1


def test_a_few_hundred_steps_lay_out_quickly_and_readably() -> None:
    # 12 stages of 25 steps, each depending on two steps of the stage before.
    steps: list[tuple[str, list[str]]] = []
    for stage in range(12):
        for i in range(25):
            deps = [] if stage == 0 else [f"s{stage - 1}.{i}", f"s{stage - 1}.{(i * 7 + 3) % 25}"]
            steps.append((f"s{stage}.{i}", deps))
    started = time.perf_counter()
    layout = layered_layout(steps)
    elapsed = time.perf_counter() - started
    assert len(layout.nodes) == 300
    assert not _overlaps(layout)
    assert elapsed < 2.0, f"layout of 300 steps took {elapsed:.2f}s"


def test_layout_of_nothing_and_of_one_step() -> None:
    assert layered_layout([]).nodes == ()
    single = layered_layout([("only", [])])
    assert [(n.name, n.layer) for n in single.nodes] == [("only", 0)] and single.edges == ()


def test_node_keys_are_stable_and_safe_in_html_ids() -> None:
    assert node_key("fetch") == node_key("fetch") != node_key("Fetch")
    assert node_key('<x y="1">/ #weird').isalnum()


def test_durations_costs_and_counts_read_well() -> None:
    assert [format_duration(s) for s in (None, 0.0123, 4.21, 42, 192, 7500, 200000)] == [
        "—",
        "12 ms",
        "4.2 s",
        "42 s",
        "3 m 12 s",
        "2 h 05 m",
        "2 d 07 h",
    ]
    assert [format_cost(c) for c in (None, 0, 0.00123, 0.5, 1234.5)] == ["—", "$0.00", "$0.0012", "$0.50", "$1,234"]
    assert [format_count(n) for n in (950, 12_300, 4_000, 4_500_000)] == ["950", "12.3k", "4k", "4.5M"]


def test_error_summary_is_the_last_line_of_a_traceback() -> None:
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom\n'
    assert error_summary(traceback) == "ValueError: boom"
    assert error_summary(None) is None and error_summary("  \n") is None


def test_result_preview_is_cut_but_the_full_text_is_kept() -> None:
    preview, full, size = result_texts({"text": "x" * 500}, True)
    assert preview is not None and preview.endswith("…") and len(preview) <= 96
    assert full is not None and '"text"' in full and size == len(full)
    assert result_texts(None, False) == (None, None, 0)
