"""The spend caps' worked example in docs/llm.md does what the page says it does.

``test_docs_examples`` runs every page as printed; this runs docs/llm.md the
same way (after the Quick start, real consumers) and then checks the
page's claims about its "drafts" workflows: which steps ran, the error and
the outcome headline, the raised cap.
"""

from __future__ import annotations

import contextlib
import importlib

import pytest

from flask_baton.headline import headline

from .docs_support import ROOT, OfflineChat, fenced_blocks
from .test_docs_examples import (
    InProcess,
    backend_environment,  # noqa: F401 (a fixture quick_start_directory uses)
    closing_state,
    follow_quick_start,
    quick_start_directory,  # noqa: F401 (a fixture)
    restored_telemetry,  # noqa: F401 (a fixture)
    run_examples,
)

LLM_PAGE = ROOT / "docs" / "llm.md"


@pytest.mark.usefixtures("quick_start_directory", "restored_telemetry")
def test_the_spend_caps_example_stops_after_the_first_draft_and_says_so() -> None:
    page = LLM_PAGE.read_text()
    client = OfflineChat()
    app = importlib.import_module("myapp").create_app()
    with closing_state(app), app.app_context():
        with contextlib.ExitStack() as consumers:
            workflow_id = follow_quick_start(InProcess(app, consumers))
            run_examples([b for b in fenced_blocks(LLM_PAGE) if b.runs], app, workflow_id, client)
        query = app.extensions["baton"].query
        by_name = {w.name: w for w in query.list_workflows(limit=100).workflows}
        capped, paused = by_name["drafts"], by_name["drafts:paused"]
        steps = {s.step_name: s for s in query.get_workflow_jobs(capped.id)}
        assert capped.state == "cancelled"
        assert [steps[f"draft{n}"].state for n in range(3)] == ["completed", "cancelled", "cancelled"]
        error = steps["draft1"].error
        assert error == "budget exceeded ($0.0000039 of $0.0000020)" and f"`{error}`" in page.replace("\n", " ")
        title = headline(capped, query.outcome_facts([capped.id])[capped.id]).title
        assert title == "Cancelled: budget exceeded ($0.0000039 of $0.0000020)" and f'"{title}"' in page
        assert paused.state == "completed" and paused.budget_usd == 0.01
