"""The dashboard's HTTP side: pages, the raw result, and how an action (``actions.py``) asks and answers.

Pages are rendered from the database on every load (no JavaScript needed to
read them); ``live.py`` keeps the index and workflow pages current
afterwards, and a step's page asks for itself again while the step runs. Actions are POSTs
checked for CSRF (``security.py``): an HTMX request gets fresh fragments of
the workflow back, a plain form post a redirect, and a post without the
``confirmed`` field (a browser without JavaScript, which cannot show
``hx-confirm``) a page asking to confirm. While flask_baton's schema is
missing or outdated, every page is a 503 saying to run ``flask baton db upgrade``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    get_template_attribute,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup

from ..appstate import AppState, get_state
from ..errors import SchemaError
from ..timeseries import DEFAULT_RANGE, RANGE_LABELS, RANGES
from . import security
from .explore import Explore
from .reads import (
    STATES,
    WAITING_FOR_PERSON,
    IndexFilters,
    WorkflowReader,
    index_page,
    read_overview,
    read_step_page,
    search_by_id,
)
from .workflow_view import WorkflowView

FRAGMENTS = "baton/_fragments.html"
STEP_PARTS = "baton/_step.html"
OVERVIEW_PARTS = "baton/_overview.html"


def baton_state() -> AppState:
    """The state of the app serving this request (``get_state``)."""
    return get_state()


@dataclass(frozen=True)
class ActionContext:
    """What the workflow fragments need to draw their forms and links."""

    workflow_id: str
    csrf: str | None
    actions: bool
    cancel_url: str
    retry_url: str
    result_url: str
    retry_workflow_url: str
    resume_url: str
    budget_url: str
    steps_url: str  # a step's page is this followed by its name (``|urlencode``)


def action_context(workflow_id: str, *, create_token: bool = True) -> ActionContext:
    token = security.csrf_token() if create_token else security.current_csrf_token()
    return ActionContext(
        workflow_id,
        token,
        security.actions_enabled() and token is not None,
        url_for("baton.cancel", workflow_id=workflow_id),
        url_for("baton.retry", workflow_id=workflow_id),
        url_for("baton.result", workflow_id=workflow_id),
        url_for("baton.retry_workflow", workflow_id=workflow_id),
        url_for("baton.resume", workflow_id=workflow_id),
        url_for("baton.set_budget", workflow_id=workflow_id),
        url_for("baton.step", workflow_id=workflow_id, step_name="-")[:-1],
    )


def page_explore() -> Explore:
    """The view the page asks for: its query, or for an HTMX post the query of the page that posted."""
    if request.method == "POST":
        return Explore.from_args(dict(parse_qsl(urlsplit(request.headers.get("HX-Current-URL", "")).query)))
    return Explore.from_args(request.args)


def fragment(name: str, *args: Any) -> Markup:
    """Render one macro of ``_fragments.html``."""
    return Markup(get_template_attribute(FRAGMENTS, name)(*args).strip())


def socket_url(endpoint: str, **values: Any) -> str:
    """A websocket route's path and query: the browser adds ws(s)://host itself.

    (Werkzeug builds websocket rules as absolute ``ws://`` URLs with the
    server's idea of its host, which is wrong behind a proxy.)
    """
    parts = urlsplit(url_for(endpoint, **values))
    return parts.path + (f"?{parts.query}" if parts.query else "")


def state_tabs(filters: IndexFilters, counts: dict[str, int]) -> list[dict[str, Any]]:
    """The "All / running / completed / ..." links, keeping the label filter."""
    tabs = [
        {
            "label": "All",
            "state": None,
            "count": sum(counts.get(state, 0) for state in STATES),
            "active": filters.state is None and not filters.waiting,
            "url": url_for("baton.index", **filters.args(state=None, before=None, waiting=None)),
        }
    ]
    for state in STATES:
        tabs.append(
            {
                "label": state.capitalize(),
                "state": state,
                "count": counts.get(state, 0),
                "active": filters.state == state and not filters.waiting,
                "url": url_for("baton.index", **filters.args(state=state, before=None, waiting=None)),
            }
        )
    tabs.append(
        {
            "label": "Waiting for a person",
            "state": "waiting",
            "count": counts.get(WAITING_FOR_PERSON, 0),
            "active": filters.waiting,
            "url": url_for("baton.index", **filters.args(state=None, before=None, waiting=WAITING_FOR_PERSON)),
        }
    )
    return tabs


def range_tabs(active: str) -> list[dict[str, Any]]:
    """The overview's links to each time range (``timeseries.RANGES``)."""
    return [
        {"label": key, "title": RANGE_LABELS[key], "active": key == active, "url": url_for("baton.overview", range=key)}
        for key in RANGES
    ]


def polled(version: str, template: str, macro: str, *args: Any) -> Response | None:
    """Answer a page's poll for its live part (``?v=`` the version it shows); None for a plain load.

    204 while the version is unchanged, else the part (``macro`` of ``template``) afresh.
    """
    if request.headers.get("HX-Request") != "true" or "v" not in request.args:
        return None
    if request.args["v"] == version:
        return Response(status=204)
    return Response(str(get_template_attribute(template, macro)(*args)).strip(), mimetype="text/html")


def workflow_fragments(view: WorkflowView, ctx: ActionContext, *, oob: bool, request: int | None = None) -> str:
    """The whole live part of a workflow page, as swappable fragments.

    Every root is a flow element (no bare ``<tr>``/``<tbody>``), so they can
    share one message: the HTML parser drops table parts that follow others.
    The first says which view (``explore``) they show, and which of the
    page's ``request`` for a view they answer.
    """
    parts = [
        str(fragment("view_state", view, request)),
        str(fragment("summary", view.summary, ctx)),
        str(fragment("dag", view.graph, view.explore)),
        str(fragment("timeline", view.timeline, view.explore)),
        str(fragment("steps_states", view.table, view.explore)),
        str(fragment("steps_table", view, ctx)),
    ]
    return "".join(out_of_band(part) if oob else part for part in parts)


def out_of_band(html: str) -> str:
    """Mark a fragment's root element for an out-of-band swap (HTTP responses)."""
    head, sep, tail = html.partition(" ")
    return f'{head} hx-swap-oob="true"{sep}{tail}'


def register_views(bp: Blueprint) -> None:
    """Add the pages and actions to the dashboard blueprint."""

    @bp.before_request
    def _guard() -> None:
        security.check_access(baton_state().config)
        if request.endpoint != f"{bp.name}.static":  # the 503 page needs its stylesheet too
            baton_state().ready()
        if request.method == "POST":
            security.check_csrf()

    @bp.errorhandler(SchemaError)
    def _schema_not_ready(exc: SchemaError) -> tuple[str, int]:
        """A page saying what to run, not a traceback; 503, as it works again once upgraded."""
        return render_template("baton/message.html", title="Database not ready", text=str(exc)), 503

    @bp.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.mimetype == "text/html":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @bp.get("/")
    @bp.get("")  # registered first: url_for builds "/baton", not "/baton/"
    def index() -> Any:
        filters = IndexFilters.from_args(request.args)
        by_id = search_by_id(baton_state(), filters)
        if by_id.workflow_id is not None:
            return redirect(url_for("baton.workflow", workflow_id=by_id.workflow_id), 303)
        page = index_page(baton_state(), filters)
        ws_url = socket_url("baton.live_index", v=page.version, **filters.args())
        csrf = security.csrf_token()
        return render_template(
            "baton/index.html",
            page=page,
            tabs=state_tabs(filters, page.counts),
            ws_url=ws_url,
            by_id=by_id,
            ranges=RANGE_LABELS,
            csrf=csrf,
            actions=csrf is not None,
        )

    @bp.get("/workflows/<workflow_id>")
    def workflow(workflow_id: str) -> str:
        view = WorkflowReader(baton_state(), workflow_id, page_explore()).read()
        if view is None:
            abort(404)
        ctx = action_context(workflow_id)
        ws_url = socket_url("baton.live_workflow", workflow_id=workflow_id, v=view.version, **view.explore.args())
        return render_template("baton/workflow.html", view=view, ctx=ctx, csrf=ctx.csrf, ws_url=ws_url)

    @bp.get("/workflows/<workflow_id>/part")
    def workflow_part(workflow_id: str) -> Response:
        """The live part of a workflow page for another view, while its socket is not open (HTMX swaps it in by id)."""
        view = WorkflowReader(baton_state(), workflow_id, page_explore()).read()
        if view is None:
            abort(404)
        return Response(workflow_fragments(view, action_context(workflow_id), oob=True), mimetype="text/html")

    @bp.get("/workflows/<workflow_id>/steps/<path:step_name>")
    def step(workflow_id: str, step_name: str) -> Any:
        """One step's runs, each with its error and the model calls it captured.

        While the step can still change, the page asks for its live part
        every few seconds with the version it shows (``v``): 204 while
        nothing changed, the part afresh otherwise.
        """
        page = read_step_page(baton_state(), workflow_id, step_name)
        if page is None:
            abort(404)
        csrf = security.csrf_token()
        return polled(page.version, STEP_PARTS, "step_live", page, csrf) or render_template(
            "baton/step.html", page=page, csrf=csrf
        )

    @bp.get("/overview")
    def overview() -> Any:
        """The queues and consumers now, and a time range's throughput, failures, durations and cost.

        Asks for its live part every few seconds, as a step's page does.
        """
        key = request.args.get("range", DEFAULT_RANGE)
        key = key if key in RANGES else DEFAULT_RANGE
        page = read_overview(baton_state(), key)
        here = url_for("baton.overview", range=key)
        return polled(page.version, OVERVIEW_PARTS, "overview_live", page, here) or render_template(
            "baton/overview.html", page=page, here=here, ranges=range_tabs(key)
        )

    @bp.get("/workflows/<workflow_id>/result")
    def result(workflow_id: str) -> Response:
        """One step's whole result as JSON (the table shows a preview)."""
        name = request.args.get("step", "")
        for step in baton_state().query.get_workflow_jobs(workflow_id):
            if step.step_name == name and step.has_result:
                body = json.dumps(step.result, ensure_ascii=False, indent=2)
                return Response(body, mimetype="application/json")
        abort(404)


def confirm_page(
    title: str, text: str, action: str, fields: dict[str, str | list[str]], label: str, style: str, back: str
) -> str:
    """The page asking a browser without JavaScript (no ``hx-confirm``) to confirm an action."""
    form = {
        "action": action,
        "fields": {**fields, "confirmed": "1", security.FORM_FIELD: security.csrf_token() or ""},
        "label": label,
        "style": style,
    }
    return render_template("baton/message.html", title=title, text=text, form=form, back=back)


def answer(workflow_id: str, kind: str, text: str) -> Any:
    """Answer an action: fresh fragments for HTMX, a redirect for a form post."""
    if request.headers.get("HX-Request") == "true":
        parts = [out_of_band(str(fragment("notice", kind, text)))]
        view = WorkflowReader(baton_state(), workflow_id, page_explore()).read()
        if view is not None:
            parts.append(workflow_fragments(view, action_context(workflow_id), oob=True))
        return Response("".join(parts), mimetype="text/html")
    flash(text, kind)
    return redirect(url_for("baton.workflow", workflow_id=workflow_id), 303)
