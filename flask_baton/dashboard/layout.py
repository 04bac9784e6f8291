"""Where to draw each node of a DAG: a layered, left-to-right layout.

Pure functions of the graph (step names and their deps), free of Flask and
SQL, so they are tested in microseconds. The classic Sugiyama recipe, kept
small:

1. **Fold** wide fan-outs and long chains into one node each (``folding``).
2. **Layer** by longest path: a node sits one column right of its deepest
   dependency, so every edge points right.
3. **Dummies** split edges that span several layers into one-layer hops, so
   long edges are routed around nodes and take part in the ordering.
4. **Order** each layer by the barycenter (mean position) of its neighbours,
   sweeping right then left a few times, keeping the ordering with the fewest
   crossings.
5. **Place**: x from the layer; y pulls each node towards its neighbours'
   mean while keeping the order and a minimum gap. An opened chain gets a
   frame around its steps, to fold it again.

The result is in pixels, ready for an SVG.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import CycleError
from .folding import STEP, Folding, fold
from .folding import node_key as node_key  # where the dashboard's tests and bench import it from

#: Geometry in CSS pixels.
NODE_WIDTH = 172
NODE_HEIGHT = 38
GAP_X = 64
GAP_Y = 14
DUMMY_HEIGHT = 6
PADDING = 16
#: Most dummies one edge is routed through (an edge past an opened chain can span hundreds of layers).
MAX_DUMMIES = 16
#: Room around an opened chain's steps for its frame and its label.
FRAME_PAD = 8
FRAME_LABEL = 18
#: Barycenter sweeps (each is one pass right and one pass left).
SWEEPS = 6


@dataclass(frozen=True)
class PlacedNode:
    """One drawn node: a step, or a fold of steps (``folding.Fold``)."""

    key: str
    kind: str
    members: tuple[str, ...]
    layer: int
    x: float
    y: float
    width: float = NODE_WIDTH
    height: float = NODE_HEIGHT

    @property
    def folded(self) -> bool:
        return self.kind != STEP

    @property
    def name(self) -> str:
        return self.members[0]


@dataclass(frozen=True)
class PlacedEdge:
    """An edge from ``source`` to ``target`` (node keys) through ``points``."""

    source: str
    target: str
    points: tuple[tuple[float, float], ...]

    def path(self) -> str:
        """SVG path data: curves between layers, straight through dummy columns."""
        (x0, y0), rest = self.points[0], self.points[1:]
        parts = [f"M{x0:g},{y0:g}"]
        for index, (x1, y1) in enumerate(rest):
            if index % 2 == 0:  # a hop between two layers
                bend = (x1 - x0) / 2
                parts.append(f"C{x0 + bend:g},{y0:g} {x1 - bend:g},{y1:g} {x1:g},{y1:g}")
            else:  # across a dummy's column
                parts.append(f"L{x1:g},{y1:g}")
            x0, y0 = x1, y1
        return " ".join(parts)


@dataclass(frozen=True)
class Frame:
    """The box around an opened chain's steps (its key is the chain's)."""

    key: str
    members: tuple[str, ...]
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Layout:
    """Every node, edge and frame of a drawing, and its size."""

    nodes: tuple[PlacedNode, ...]
    edges: tuple[PlacedEdge, ...]
    width: float
    height: float
    #: step name -> key of the node that draws it
    node_of: Mapping[str, str] = field(default_factory=dict)
    frames: tuple[Frame, ...] = ()


# -- 2. layering ------------------------------------------------------------------


def longest_path_layers(order: Sequence[str], preds: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Layer of each node: 0 for sources, else 1 + the deepest predecessor's.

    ``order`` lists every node; predecessors not in it are ignored. Raises
    ``CycleError`` on a cycle (workflows are validated, so that is a bug).
    """
    known = set(order)
    pending = {node: {p for p in preds.get(node, ()) if p in known} for node in order}
    succs: dict[str, list[str]] = {node: [] for node in order}
    for node, ps in pending.items():
        for p in ps:
            succs[p].append(node)
    layer = {node: 0 for node in order}
    ready = [node for node in order if not pending[node]]
    done = 0
    while ready:
        node = ready.pop()
        done += 1
        for succ in succs[node]:
            layer[succ] = max(layer[succ], layer[node] + 1)
            pending[succ].discard(node)
            if not pending[succ]:
                ready.append(succ)
    if done != len(order):
        raise CycleError(node for node in order if pending[node])
    return layer


# -- 4. ordering --------------------------------------------------------------------


def count_crossings(upper: Sequence[str], lower: Sequence[str], links: Iterable[tuple[str, str]]) -> int:
    """Crossings between two adjacent layers joined by ``links`` (upper, lower)."""
    top = {node: i for i, node in enumerate(upper)}
    bottom = {node: i for i, node in enumerate(lower)}
    pairs = sorted((top[a], bottom[b]) for a, b in links if a in top and b in bottom)
    # Crossings are inversions of the lower positions once sorted by upper:
    # count them with a Fenwick tree, O(E log E) for wide fan-outs.
    tree = [0] * (len(lower) + 1)
    crossings = 0
    for seen, (_, position) in enumerate(pairs):
        index, not_above = position + 1, 0
        while index > 0:
            not_above += tree[index]
            index -= index & -index
        crossings += seen - not_above
        index = position + 1
        while index <= len(lower):
            tree[index] += 1
            index += index & -index
    return crossings


def order_layers(
    layers: list[list[str]],
    preds: Mapping[str, Sequence[str]],
    succs: Mapping[str, Sequence[str]],
    sweeps: int = SWEEPS,
) -> list[list[str]]:
    """Reorder each layer by barycenters; return the ordering with fewest crossings."""

    def crossings(ordering: list[list[str]]) -> int:
        return sum(
            count_crossings(ordering[i], ordering[i + 1], ((p, n) for n in ordering[i + 1] for p in preds.get(n, ())))
            for i in range(len(ordering) - 1)
        )

    def reorder(layer: list[str], neighbours: Mapping[str, Sequence[str]], reference: list[str]) -> list[str]:
        position = {node: i for i, node in enumerate(reference)}
        scale = len(reference) / max(len(layer), 1)

        def barycenter(item: tuple[int, str]) -> float:
            index, node = item
            linked = [position[n] for n in neighbours.get(node, ()) if n in position]
            return sum(linked) / len(linked) if linked else index * scale

        return [node for _, node in sorted(enumerate(layer), key=barycenter)]

    current = [list(layer) for layer in layers]
    best, best_crossings = [list(layer) for layer in current], crossings(current)
    for _ in range(sweeps):
        if best_crossings == 0:
            break
        for i in range(1, len(current)):
            current[i] = reorder(current[i], preds, current[i - 1])
        for i in range(len(current) - 2, -1, -1):
            current[i] = reorder(current[i], succs, current[i + 1])
        found = crossings(current)
        if found < best_crossings:
            best, best_crossings = [list(layer) for layer in current], found
    return best


# -- 5. placing -----------------------------------------------------------------------


def _pack(desired: Sequence[float], sizes: Sequence[float], gap: float) -> list[float]:
    """Tops as close to ``desired`` as the order and the gaps allow (one layer).

    Resolving overlaps by pushing down only drifts everything downwards, so
    push down, push up, and take the mean: both keep the order and the gaps,
    and so does their average.
    """
    down = list(desired)
    for i in range(1, len(down)):
        down[i] = max(down[i], down[i - 1] + sizes[i - 1] + gap)
    up = list(desired)
    for i in range(len(up) - 2, -1, -1):
        up[i] = min(up[i], up[i + 1] - sizes[i] - gap)
    return [(a + b) / 2 for a, b in zip(down, up)]


def layered_layout(steps: Sequence[tuple[str, Sequence[str]]], folding: Folding | None = None) -> Layout:
    """Lay out ``steps`` ((name, deps) in insertion order) left to right, folded as ``folding`` says.

    Without ``folding``, fans and chains are folded as ``folding.fold`` does by default.
    """
    if not steps:
        return Layout((), (), 2 * PADDING, 2 * PADDING, {})
    if folding is None:
        folding = fold(steps)
    node_of = folding.node_of
    unit_of = {unit.key: unit for unit in folding.nodes}
    order = list(unit_of)

    preds: dict[str, list[str]] = {key: [] for key in order}
    for name, deps in steps:
        target = node_of[name]
        for dep in deps:
            source = node_of.get(dep)
            if source is not None and source != target and source not in preds[target]:
                preds[target].append(source)

    layer_of = longest_path_layers(order, preds)

    # 3. dummies: an edge spanning k layers becomes k hops through k-1 dummies
    #    (up to MAX_DUMMIES: a longer edge is one curve, so its cost stays bounded).
    real = set(order)
    chain_preds: dict[str, list[str]] = {key: [] for key in order}
    chains: dict[tuple[str, str], list[str]] = {}
    for target in order:
        for source in preds[target]:
            previous, path = source, []
            skipped = range(layer_of[source] + 1, layer_of[target])
            for layer in skipped if len(skipped) <= MAX_DUMMIES else ():
                dummy = f"~{source}>{target}#{layer}"
                layer_of[dummy] = layer
                chain_preds[dummy] = [previous]
                path.append(dummy)
                previous = dummy
            chain_preds[target].append(previous)
            chains[(source, target)] = path
    chain_succs: dict[str, list[str]] = {node: [] for node in chain_preds}
    for node, ps in chain_preds.items():
        for p in ps:
            chain_succs[p].append(node)

    depth = max(layer_of.values()) + 1
    layers: list[list[str]] = [[] for _ in range(depth)]
    for node in order:
        layers[layer_of[node]].append(node)
    for path in chains.values():
        for dummy in path:
            layers[layer_of[dummy]].append(dummy)
    layers = order_layers(layers, chain_preds, chain_succs)

    framed = {node_of[name] for chain in folding.opened for name in chain.members}

    def above(node: str) -> float:
        """Room kept over a node: an opened chain's steps have their frame's top and label there."""
        return FRAME_PAD + FRAME_LABEL if node in framed else 0.0

    def drawn(node: str) -> float:
        return NODE_HEIGHT if node in real else DUMMY_HEIGHT

    def size(node: str) -> float:
        return above(node) + drawn(node) + (FRAME_PAD if node in framed else 0.0)

    # Start stacked and centred on the tallest layer, then relax towards neighbours.
    heights = [sum(size(n) for n in column) + GAP_Y * (len(column) - 1) for column in layers]
    tallest = max(heights)
    top: dict[str, float] = {}
    for column, height in zip(layers, heights):
        y = (tallest - height) / 2
        for node in column:
            top[node] = y
            y += size(node) + GAP_Y

    def centre(node: str) -> float:
        return top[node] + above(node) + drawn(node) / 2

    for _ in range(4):
        for index_range, neighbours in ((range(1, depth), chain_preds), (range(depth - 2, -1, -1), chain_succs)):
            for i in index_range:
                column = layers[i]
                desired = []
                for node in column:
                    linked = [centre(n) for n in neighbours.get(node, ())]
                    mean = sum(linked) / len(linked) if linked else centre(node)
                    desired.append(mean - above(node) - drawn(node) / 2)
                for node, y in zip(column, _pack(desired, [size(n) for n in column], GAP_Y)):
                    top[node] = y
    lowest = min(top.values())
    for node in top:
        top[node] += PADDING - lowest

    def left(node: str) -> float:
        return PADDING + layer_of[node] * (NODE_WIDTH + GAP_X)

    placed = tuple(
        PlacedNode(key, unit_of[key].kind, unit_of[key].members, layer_of[key], left(key), top[key] + above(key))
        for layer in layers
        for key in layer
        if key in real
    )
    edges = []
    for (source, target), path in chains.items():
        points = [(left(source) + NODE_WIDTH, centre(source))]
        for dummy in path:
            points += [(left(dummy), centre(dummy)), (left(dummy) + NODE_WIDTH, centre(dummy))]
        points.append((left(target), centre(target)))
        edges.append(PlacedEdge(source, target, tuple(points)))
    frames = []
    for chain in folding.opened:
        keys = [node_of[name] for name in chain.members]
        x0, x1 = min(left(k) for k in keys) - FRAME_PAD, max(left(k) for k in keys) + NODE_WIDTH + FRAME_PAD
        y0, y1 = min(top[k] for k in keys), max(top[k] + size(k) for k in keys)
        frames.append(Frame(chain.key, chain.members, x0, y0, x1 - x0, y1 - y0))
    width = PADDING * 2 + depth * NODE_WIDTH + (depth - 1) * GAP_X
    height = max(top[n] + size(n) for n in top) + PADDING
    return Layout(placed, tuple(edges), width, height, node_of, tuple(frames))
