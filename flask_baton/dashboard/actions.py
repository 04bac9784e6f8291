"""The dashboard's actions: cancel a workflow or retry one of its steps; retry, resume or budget a workflow;
cancel or retry several; decide an approval.

All follow the same rules: the blueprint's guard checks access and the CSRF
token of every POST; a post without the ``confirmed`` field (a browser
without JavaScript, which cannot show the confirmation) gets a page asking
to confirm; an HTMX request gets fragments back, a plain form post a
redirect. The actions on one workflow go through ``_once_confirmed``, so they
ask and answer alike. The work is ``control``'s and ``bulk``'s, as for the
API and the CLI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, request, url_for

from .. import budget_control, bulk, control, waits
from ..appstate import AppState
from ..budget import check_budget, dollars
from ..bulk import BulkResult
from ..errors import BatonError, WorkflowError
from . import security
from .reads import PAGE_SIZE, WORKFLOW_ID, RowReads
from .views import answer, baton_state, confirm_page, fragment, out_of_band
from .wait_view import decision

#: Stored as the error of each step a cancel from the dashboard stops.
CANCEL_REASON = "cancelled from the dashboard"
#: Longest comment kept with an approval's decision.
MAX_COMMENT = 2000
#: Approve / Reject: (approved, button label, button style).
VERDICTS = {"approve": (True, "Approve", ""), "reject": (False, "Reject", "danger")}


@dataclass(frozen=True)
class Rerun:
    """One of the two ways to run a finished workflow's failed steps again, as its button says it."""

    act: Callable[[AppState, str], control.Retried]
    endpoint: str
    title: str
    text: str
    label: str


RERUNS = {
    "retry": Rerun(
        control.retry_workflow,
        "baton.retry_workflow",
        "Retry this workflow?",
        "its discarded and cancelled steps run again; completed steps keep their results.",
        "Retry workflow",
    ),
    "resume": Rerun(
        control.resume_workflow,
        "baton.resume",
        "Resume this workflow?",
        "the steps a user's cancel stopped run again; steps that failed on their own stay as they are.",
        "Resume",
    ),
}


@dataclass(frozen=True)
class Bulk:
    """An action the index can take on the workflows selected."""

    act: Callable[[AppState, Sequence[str]], list[BulkResult]]
    done: str  # "3 retried"
    verb: str
    text: str
    style: str


BULKS = {
    "cancel": Bulk(
        lambda state, ids: bulk.cancel_workflows(state, ids, CANCEL_REASON),
        "cancelled",
        "Cancel",
        "the steps of each that have not finished are cancelled; finished ones are skipped.",
        "danger",
    ),
    "retry": Bulk(
        bulk.retry_workflows,
        "retried",
        "Retry",
        "the failed and cancelled steps of each run again; running ones are skipped.",
        "",
    ),
}


def register_actions(bp: Blueprint) -> None:
    """Add the actions on a workflow, its steps, several workflows and approvals to the dashboard blueprint."""

    @bp.post("/workflows/<workflow_id>/cancel")
    def cancel(workflow_id: str) -> Any:
        name = _workflow_name(workflow_id)

        def act() -> str:
            cancelled = control.cancel_workflow(baton_state(), workflow_id, CANCEL_REASON)
            return f"Workflow cancelled ({len(cancelled)} step(s) cancelled)."

        confirm = Confirm(
            "Cancel this workflow?",
            f"Workflow “{name}” ({workflow_id}) will stop: its steps that have not finished are cancelled.",
            "baton.cancel",
            "Cancel workflow",
            "danger",
        )
        return _once_confirmed(workflow_id, confirm, act)

    @bp.post("/workflows/<workflow_id>/retry")
    def retry(workflow_id: str) -> Any:
        step = request.form.get("step", "")

        def act() -> str:
            rearmed = control.retry_step(baton_state(), workflow_id, step)
            others = len(rearmed) - 1
            extra = f" with {others} dependent step(s)" if others else ""
            return f"Step “{step}” will run again{extra}.{_still_cancelled(rearmed)}"

        confirm = Confirm(
            "Retry this step?",
            f"Step “{step}” runs again from its first attempt, and so do the steps its failure cancelled.",
            "baton.retry",
            "Retry step",
            fields={"step": step},
        )
        return _once_confirmed(workflow_id, confirm, act)

    @bp.post("/workflows/<workflow_id>/retry-workflow")
    def retry_workflow(workflow_id: str) -> Any:
        return _rerun(RERUNS["retry"], workflow_id)

    @bp.post("/workflows/<workflow_id>/resume")
    def resume(workflow_id: str) -> Any:
        return _rerun(RERUNS["resume"], workflow_id)

    @bp.post("/workflows/<workflow_id>/budget", endpoint="set_budget")
    def set_budget(workflow_id: str) -> Any:
        return _set_budget(workflow_id)

    @bp.post("/workflows/<workflow_id>/decide")
    def decide(workflow_id: str) -> Any:
        return _decide(workflow_id)

    @bp.post("/bulk", endpoint="bulk")
    def bulk_action() -> Any:
        action = BULKS.get(request.form.get("action", ""))
        if action is None:
            abort(400)
        # At most a page of them: what one index page can select.
        ids = [i for i in dict.fromkeys(request.form.getlist("ids")) if WORKFLOW_ID.match(i)][:PAGE_SIZE]
        if not ids:
            return _bulk_answer("error", "Select one or more workflows first.", [])
        if request.form.get("confirmed") != "1":
            return confirm_page(
                f"{action.verb} {_workflows(len(ids))}?",
                f"{action.verb} {_workflows(len(ids))}: {action.text}",
                url_for("baton.bulk"),
                {"action": request.form["action"], "ids": ids},
                f"{action.verb} {_workflows(len(ids))}",
                action.style,
                url_for("baton.index"),
            )
        results = action.act(baton_state(), ids)
        kind = "ok" if all(result.done for result in results) else "error"
        return _bulk_answer(kind, bulk.summary(results, action.done) + ".", results)


def _workflow_name(workflow_id: str) -> str:
    """The name of the workflow an action is about, for its confirmation; a 404 when there is no such workflow."""
    record = baton_state().query.get_workflow(workflow_id)
    if record is None:
        abort(404)
    return record.name


@dataclass(frozen=True)
class Confirm:
    """What the page asking to confirm an action on one workflow says, and what it posts again."""

    title: str
    text: str
    endpoint: str  # the action's, posted to again with ``confirmed``
    label: str  # of the button that confirms
    style: str = ""  # of that button: "" or "danger"
    fields: dict[str, str | list[str]] = field(default_factory=dict)  # the action's own form fields, posted again


def _once_confirmed(
    workflow_id: str, confirm: Confirm, act: Callable[[], str], refused: type[Exception] = WorkflowError
) -> Any:
    """An action on a workflow: the page asking to confirm it, or, once confirmed, ``act``'s answer.

    ``act`` does the work and says what it did; a ``refused`` error it raises
    is told as the action's error, so every workflow action answers alike.
    """
    if request.form.get("confirmed") != "1":
        action = url_for(confirm.endpoint, workflow_id=workflow_id)
        back = url_for("baton.workflow", workflow_id=workflow_id)
        return confirm_page(confirm.title, confirm.text, action, confirm.fields, confirm.label, confirm.style, back)
    try:
        said = act()
    except refused as exc:
        return answer(workflow_id, "error", str(exc))
    return answer(workflow_id, "ok", said)


def _still_cancelled(rearmed: control.Retried) -> str:
    """`` Still cancelled: “report” (dependency 'x' discarded).``, or nothing: what a retry left failed, and why."""
    left = "; ".join(f"“{name}” ({why})" for name, why in rearmed.left_cancelled.items())
    return f" Still cancelled: {left}." if left else ""


def _rerun(rerun: Rerun, workflow_id: str) -> Any:
    text = f"Workflow “{_workflow_name(workflow_id)}” ({workflow_id}): {rerun.text}"

    def act() -> str:
        rearmed = rerun.act(baton_state(), workflow_id)
        return f"{len(rearmed)} step(s) will run again: {', '.join(rearmed)}.{_still_cancelled(rearmed)}"

    return _once_confirmed(workflow_id, Confirm(rerun.title, text, rerun.endpoint, rerun.label), act)


def _set_budget(workflow_id: str) -> Any:
    """Set the workflow's cap from the form's ``usd`` (``budget_control.set_budget``), once confirmed."""
    name = _workflow_name(workflow_id)
    given = request.form.get("usd", "")

    def act() -> str:
        usd = _number(given)
        released = budget_control.set_budget(baton_state(), workflow_id, usd)
        steps = f" {len(released)} held step(s) released: {', '.join(released)}." if released else ""
        return f"Budget set to {dollars(usd)}.{steps}"

    confirm = Confirm(
        "Set this workflow's budget?",
        f"Workflow “{name}” ({workflow_id}): its budget becomes ${given} US dollars; "
        "steps the budget held run again if it allows them.",
        "baton.set_budget",
        "Set budget",
        fields={"usd": given},
    )
    return _once_confirmed(workflow_id, confirm, act, refused=BatonError)


def _number(given: str) -> float:
    """A form's number as a float; text that is none is refused by ``check_budget``, naming ``budget_usd``."""
    try:
        return float(given)
    except ValueError:
        return check_budget(given)


def _decide(workflow_id: str) -> Any:
    """Approve or reject a step waiting for a person: its signal, with the comment and who decided."""
    step = request.form.get("step", "")
    verdict = VERDICTS.get(request.form.get("decision", ""))
    if verdict is None:
        abort(400)
    approved, label, style = verdict
    comment = request.form.get("comment", "").strip()[:MAX_COMMENT]
    wait = baton_state().query.get_waits(workflow_id).get(step)
    if wait is None or not wait.approval:
        abort(404)
    back = url_for("baton.step", workflow_id=workflow_id, step_name=step)
    if request.form.get("confirmed") != "1":
        said = f" with the comment “{comment}”" if comment else ""
        return confirm_page(
            f"{label} “{step}”?",
            f"Step “{step}” waits for “{wait.name}”: {label.lower()} it{said}.",
            url_for("baton.decide", workflow_id=workflow_id),
            {"step": step, "decision": request.form["decision"], "comment": comment},
            label,
            style,
            back,
        )
    if not wait.waiting:
        return _back(back, "error", f"Step “{step}” is not waiting for a decision any more.")
    user = security.user()
    try:
        waits.signal(baton_state(), workflow_id, wait.name, decision(approved, comment, user), user)
    except WorkflowError as exc:
        return _back(back, "error", str(exc))
    by = f" by {user}" if user else ""
    return _back(back, "ok", f"Step “{step}” {'approved' if approved else 'rejected'}{by}.")


def _back(url: str, kind: str, text: str) -> Any:
    """Tell what a decision did on the step's page: HTMX goes there (``HX-Redirect``), a form post is redirected."""
    flash(text, kind)
    if request.headers.get("HX-Request") == "true":
        return Response(status=204, headers={"HX-Redirect": url})
    return redirect(url, 303)


def _bulk_answer(kind: str, text: str, results: list[BulkResult]) -> Any:
    """Answer a bulk action: the changed rows and a notice for HTMX, a redirect for a form post."""
    if request.headers.get("HX-Request") != "true":
        flash(text, kind)
        return redirect(url_for("baton.index"), 303)
    state = baton_state()
    records = state.query.get_workflows([result.workflow_id for result in results])
    reads, now = RowReads.of(state, records.values()), time.time()
    # Rows first: the parser keeps table rows only where they open the response.
    rows = [out_of_band(str(fragment("workflow_row", reads.row(record, now)))) for record in records.values()]
    notice = out_of_band(str(fragment("bulk_notice", kind, text, results)))
    return Response("".join(rows) + notice, mimetype="text/html")


def _workflows(count: int) -> str:
    return f"{count} workflow{'' if count == 1 else 's'}"
