"""Results flow downstream: the research diamond, through every way of reading them."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from flask_baton import Workflow

from . import ledger
from .steps import core_compile, core_credibility, core_fetch, core_keywords, core_summarize
from .support import ThreadConsumer, wait_finished


def test_diamond_passes_each_result_to_its_dependents(app: Flask, consumer: ThreadConsumer, ledger_path: Path) -> None:
    wf = (
        Workflow(name="research:ai")
        .add("fetch", core_fetch.new(topic="ai"))
        .add("summarize", core_summarize.new(), deps=["fetch"])
        .add("keywords", core_keywords.new(), deps=["fetch"])
        .add("credibility", core_credibility.new(), deps=["fetch"])
        .add("compile", core_compile.new(), deps=["summarize", "keywords", "credibility"])
    )
    wf.insert()

    assert wait_finished(app, wf.workflow_id).state == "completed"

    steps = {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)}
    assert steps["fetch"].result == {"body": "notes on ai", "sources": 3}
    assert steps["summarize"].result == {"summary": "NOTES ON AI"}  # job.result(dep)
    assert steps["keywords"].result == {"keywords": ["notes", "on", "ai"]}  # results.get_result
    assert steps["credibility"].result == {"score": 0.75}  # job.results()
    assert steps["compile"].result == {  # results.get_all_results, job.deps
        "deps": ["credibility", "keywords", "summarize"],
        "inputs": {
            "summarize": {"summary": "NOTES ON AI"},
            "keywords": {"keywords": ["notes", "on", "ai"]},
            "credibility": {"score": 0.75},
        },
    }
    assert steps["compile"].deps and set(steps["compile"].deps) == {"summarize", "keywords", "credibility"}
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {name: 1 for name in steps}


def test_diamond_runs_the_fan_in_after_every_branch(app: Flask, consumer: ThreadConsumer) -> None:
    wf = (
        Workflow(name="research:order")
        .add("fetch", core_fetch.new(topic="order"))
        .add("summarize", core_summarize.new(), deps=["fetch"])
        .add("keywords", core_keywords.new(), deps=["fetch"])
        .add("credibility", core_credibility.new(), deps=["fetch"])
        .add("compile", core_compile.new(), deps=["summarize", "keywords", "credibility"])
    )
    wf.insert()
    wait_finished(app, wf.workflow_id)

    steps = {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)}
    for branch in ("summarize", "keywords", "credibility"):
        assert steps["fetch"].finished_at <= steps[branch].started_at
        assert steps[branch].finished_at <= steps["compile"].started_at
