"""Which steps a big workflow's drawing shows as one node: wide fan-outs and long chains.

A workflow of a few hundred or thousand steps cannot be read one box per
step, so the graph and the timeline draw *folds*:

- **twins**: steps with exactly the same deps and the same dependents
  (``item:000`` .. ``item:299`` between a split and a merge), when there are
  more than ``TWINS_OVER`` of them;
- **chains**: runs of single-dependency steps, each the only dependent of the
  one before (``step:000 → step:001 → …``), when longer than ``CHAIN_OVER``.

Everything else is drawn one step per node. A chain can be *opened* (its key
in ``opened``): its steps are then drawn one by one again. Pure functions of
the structure (names and deps, in insertion order), free of Flask and SQL,
and deterministic, so a page and its live updates always fold alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

#: A fan-out of more twins than this is drawn as one node.
TWINS_OVER = 24
#: A run of more single-dependency steps than this is drawn as one node.
CHAIN_OVER = 8

STEP, TWINS, CHAIN = "step", "twins", "chain"


def node_key(step_name: str) -> str:
    """A short id for a step, safe in HTML ids, CSS selectors and URLs."""
    return hashlib.blake2b(step_name.encode("utf-8"), digest_size=6).hexdigest()


def fold_key(kind: str, members: Iterable[str]) -> str:
    """A short id for a fold: ``g…`` for twins, ``c…`` for a chain (never a step's key: those are hex)."""
    digest = hashlib.blake2b("\x1f".join(sorted(members)).encode("utf-8"), digest_size=6).hexdigest()
    return ("g" if kind == TWINS else "c") + digest


@dataclass(frozen=True)
class Fold:
    """Steps drawn as one node: a single step, a group of twins, or a chain (in run order)."""

    key: str
    kind: str  # STEP, TWINS or CHAIN
    members: tuple[str, ...]

    @property
    def folded(self) -> bool:
        return self.kind != STEP


@dataclass(frozen=True)
class Folding:
    """How one workflow is drawn: its nodes, and every fold it has, open or not."""

    nodes: tuple[Fold, ...]  # what is drawn, in insertion order of each node's first step
    node_of: Mapping[str, str]  # step name -> key of the node that draws it
    folds: Mapping[str, Fold]  # key -> every twins group and chain, opened ones included
    opened: tuple[Fold, ...]  # the chains drawn step by step, in insertion order

    def members(self, key: str) -> tuple[str, ...] | None:
        """The steps of a fold, or the one step, with this key; None for a key it does not know."""
        found = self.folds.get(key)
        if found is not None:
            return found.members
        return next(((name,) for name in self.node_of if node_key(name) == key), None)


def dependents_of(steps: Sequence[tuple[str, Sequence[str]]]) -> dict[str, list[str]]:
    """Each step's dependents, in insertion order (deps on unknown steps are ignored).

    Stored steps have each dep once (it is the edges' primary key), so deps
    are not deduplicated here.
    """
    dependents: dict[str, list[str]] = {name: [] for name, _ in steps}
    for name, deps in steps:
        for dep in deps:
            if dep in dependents:
                dependents[dep].append(name)
    return dependents


def twin_groups(
    steps: Sequence[tuple[str, Sequence[str]]],
    over: int = TWINS_OVER,
    dependents: Mapping[str, Sequence[str]] | None = None,
) -> list[tuple[str, ...]]:
    """Groups of more than ``over`` twins (same deps, same dependents), members in insertion order.

    Steps are first grouped by their deps alone (most have one: its name is
    the key, nothing is built), and only groups large enough are split by
    their dependents.
    """
    if dependents is None:
        dependents = dependents_of(steps)
    by_deps: dict[str | frozenset[str], list[str]] = {}
    for name, deps in steps:
        by_deps.setdefault(deps[0] if len(deps) == 1 else frozenset(deps), []).append(name)
    groups = []
    for candidates in by_deps.values():
        if len(candidates) <= over:
            continue
        by_dependents: dict[frozenset[str], list[str]] = {}
        for name in candidates:
            by_dependents.setdefault(frozenset(dependents[name]), []).append(name)
        groups += [tuple(group) for group in by_dependents.values() if len(group) > over]
    first = {name: index for index, (name, _) in enumerate(steps)}
    return sorted(groups, key=lambda group: first[group[0]])


def chain_runs(
    steps: Sequence[tuple[str, Sequence[str]]],
    over: int = CHAIN_OVER,
    dependents: Mapping[str, Sequence[str]] | None = None,
) -> list[tuple[str, ...]]:
    """Runs of more than ``over`` steps, each with one dep: the step before it, whose only dependent it is.

    A run starts at a single-dependency step whose dep is not itself linked
    one-to-one to a step before it, and goes on while the next step is.
    """
    if dependents is None:
        dependents = dependents_of(steps)
    deps_of = dict(steps)

    def linked(before: str, after: str) -> bool:
        """``after``'s one dep is ``before``, and ``before``'s one dependent is ``after``."""
        return len(deps_of[after]) == 1 and len(dependents[before]) == 1 and dependents[before][0] == after

    runs = []
    for name, deps in steps:
        if len(deps) != 1 or deps[0] not in deps_of:
            continue  # not a single-dependency step
        before = deps[0]
        if len(deps_of[before]) == 1 and deps_of[before][0] in deps_of and linked(before, name):
            continue  # not the first of its run
        run = [name]
        while len(dependents[run[-1]]) == 1 and linked(run[-1], dependents[run[-1]][0]):
            run.append(dependents[run[-1]][0])
        if len(run) > over:
            runs.append(tuple(run))
    return runs


def fold(
    steps: Sequence[tuple[str, Sequence[str]]],
    opened: Collection[str] = (),
    *,
    twins_over: int = TWINS_OVER,
    chain_over: int = CHAIN_OVER,
) -> Folding:
    """Fold ``steps`` ((name, deps) in insertion order), drawing the chains keyed in ``opened`` step by step.

    Twins and chains never share a step: twins of a group share one
    dependent, which then has many deps and ends any run.
    """
    dependents = dependents_of(steps)
    folds = [Fold(fold_key(TWINS, m), TWINS, m) for m in twin_groups(steps, twins_over, dependents)]
    folds += [Fold(fold_key(CHAIN, m), CHAIN, m) for m in chain_runs(steps, chain_over, dependents)]
    fold_of = {name: f for f in folds for name in f.members if not (f.kind == CHAIN and f.key in opened)}
    nodes: list[Fold] = []
    drawn: set[str] = set()
    for name, _ in steps:
        unit = fold_of.get(name) or Fold(node_key(name), STEP, (name,))
        if unit.key not in drawn:
            drawn.add(unit.key)
            nodes.append(unit)
    return Folding(
        tuple(nodes),
        {name: unit.key for unit in nodes for name in unit.members},
        {f.key: f for f in folds},
        tuple(f for f in folds if f.kind == CHAIN and f.key in opened),
    )
