"""The "source survey": one big workflow, to see the dashboard at operator scale.

::

    plan ─> read:000 … read:299 ─> tally ─> draft:01 ─> … ─> draft:50

A 300-wide fan-out and a 50-step chain (352 steps): the dashboard folds both
into a node each, fits the graph to its box and lets you zoom, filter the step
table and open a folded node. Some reads fail on purpose, deterministically
from the topic: about one in ten fails its first run and succeeds when retried
(its step page lists both runs), about one in a hundred fails every run and is
discarded. ``tally`` tolerates discarded reads (``Dep(..., ignore_discarded=True)``),
so the survey completes and its banner says how many failures it tolerated.

The steps are instant (no fake pauses): 352 of them take a few seconds.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask_baton import Dep, Job, Workflow

from .steps import baton

#: The prefix of every survey workflow's name; the rest is the topic.
SURVEY_PREFIX = "survey:"
READS, DRAFTS = 300, 50


class FlakySource(RuntimeError):
    """A made-up source that did not answer (on purpose, to show retries)."""


@baton.step()
def plan(job: Job) -> dict[str, Any]:
    """Root: what the survey reads."""
    return {"topic": job.args["topic"], "sources": READS}


@baton.step(retries=1, retry_delay=1)
def read_source(job: Job) -> dict[str, Any]:
    """Read one source; some fail once, a few fail for good (decided by the topic)."""
    luck = hashlib.sha256(f"survey:{job.args['topic']}:{job.args['index']}".encode()).digest()[0]
    if luck < 3 or (luck < 28 and job.attempt == 1):
        raise FlakySource(f"source {job.args['index']} did not answer (attempt {job.attempt})")
    return {"index": job.args["index"], "relevance": luck % 10}


@baton.step()
def tally(job: Job) -> dict[str, Any]:
    """Fan-in: the reads that answered (discarded ones are tolerated)."""
    lost = sorted(job.failed_deps())
    return {"read": READS - len(lost), "lost": lost}


@baton.step()
def draft(job: Job) -> dict[str, Any]:
    """One section of the survey, written after the previous one."""
    return {"section": job.args["section"]}


def start_survey(topic: str) -> str:
    """Insert the survey for ``topic`` (already checked as a brief's would be); return its id."""
    workflow = Workflow(name=SURVEY_PREFIX + topic).add("plan", plan.new(topic=topic))
    reads = [f"read:{i:03d}" for i in range(READS)]
    for i, name in enumerate(reads):
        workflow.add(name, read_source.new(topic=topic, index=i), deps=["plan"])
    workflow.add("tally", tally.new(), deps=[Dep(name, ignore_discarded=True) for name in reads])
    previous = "tally"
    for section in range(1, DRAFTS + 1):
        name = f"draft:{section:02d}"
        workflow.add(name, draft.new(section=section), deps=[previous])
        previous = name
    workflow.insert()
    return workflow.workflow_id
