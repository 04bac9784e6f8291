"""``Baton``, the Flask extension object: steps, per-app state, public API."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from huey import Huey
from sqlalchemy.engine import make_url

from . import budget_control, bulk, control, pacing, waits
from .appstate import EXTENSION_KEY, AppState, get_state
from .buckets import RateLimitUsage
from .bulk import BulkResult
from .cli import baton_cli
from .config import BatonConfig, read_config
from .dashboard import register_dashboard
from .errors import ConfigError, DuplicateStepError, ScheduleError, SetupError, WorkflowNotFoundError
from .events.choice import transport_for
from .explain import Explanation, explain_step
from .export import export_workflow
from .huey_factory import huey_from_url
from .limiter_choice import limiter_for
from .limits import declared_limits
from .migration import protect as protect_from_autogenerate
from .query import Query, WorkflowStatus
from .queues import Queues
from .runner import hand_back, run_node, serving
from .schedule import Build, Overlap, Schedule, declare
from .schema_check import SchemaCheck
from .steps import Step, StepFunction
from .store import Store, open_store
from .subworkflow import join_step
from .sweep import sweep
from .ticks import run_due
from .usage import Stats

#: The options ``llm_step`` sets unless given: its own queue, retries patient with a model.
LLM_STEP_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {"retries": 3, "retry_delay": 1.0, "retry_backoff": 2.0, "max_retry_delay": 60.0, "queue": "llm"}
)


class Baton:
    """Dependency-ordered Huey workflows for a Flask app.

    Steps may be declared on it at import time, before any app exists; each
    app given to ``init_app`` gets its own engine, Huey queues and config.
    """

    def __init__(self, app: Flask | None = None, *, db: SQLAlchemy | None = None, huey: Huey | None = None) -> None:
        self._db = db
        self._huey = huey
        # Built-in steps every app runs: the join of each sub-workflow.
        self.steps: dict[str, Step] = {join_step.name: join_step}
        self.schedules: dict[str, Schedule] = {}
        if app is not None:
            self.init_app(app, db=db)

    # -- setup ---------------------------------------------------------------

    def init_app(self, app: Flask, db: SQLAlchemy | None = None) -> None:
        """Register with ``app``: read ``BATON_*`` config, open the store, build the queues.

        The database must be SQLite or PostgreSQL through psycopg 3; any other
        is refused here with a ``ConfigError`` (``store.store_class``).
        """
        if EXTENSION_KEY in app.extensions:
            raise SetupError("flask_baton is already registered on this app; call init_app once per app")
        config = read_config(app)
        self._check_rate_limit_keys(config)
        database_uri = config.database_uri or self._database_url(app, db or self._db)
        store = open_store(make_url(database_uri), config, app.instance_path)
        huey = self._huey or huey_from_url(
            config.huey_url, config.huey_name or app.name, app.instance_path, config.sqlite_synchronous
        )
        # The state lives in app.extensions only: it refers to the app, so a
        # weak-keyed map of app -> state would keep every app alive.
        app.extensions[EXTENSION_KEY] = state = build_state(app, config, store, huey, self.steps, self.schedules)
        app.cli.add_command(baton_cli)
        protect_from_autogenerate(app)
        if config.dashboard_prefix is not None:
            register_dashboard(app, state)

    def close(self, app: Flask | None = None) -> None:
        """Release the connections flask_baton holds for ``app`` (default: the current app).

        Call it last, when the app is done with (a script's end, a test's
        teardown), as ``flask baton worker`` does when its consumer stops: held
        events are sent and the event transport closed (later events are
        dropped), every Huey instance's storage closed and flask_baton's engine
        disposed, so no socket or SQLite handle is left to the garbage
        collector, which Python 3.13 warns about. The host's own ``db`` engine
        is the host's to dispose.
        """
        self.state(app).close()

    def _check_rate_limit_keys(self, config: BatonConfig) -> None:
        """Every ``rate_limit`` key written on a step falls under ``BATON_RATE_LIMITS`` (else ``ConfigError``).

        Steps declared after ``init_app``, and keys a step computes, are checked when the step runs.
        """
        declared = declared_limits((step.name, step.rate_limit) for step in self.steps.values())
        for step in self.steps.values():
            if isinstance(step.rate_limit, str):
                config.rate_limits.limit_of(step.rate_limit, step.name, declared)

    @staticmethod
    def _database_url(app: Flask, db: SQLAlchemy | None) -> Any:
        db = db or app.extensions.get("sqlalchemy")
        if db is None:
            raise ConfigError(
                "flask_baton needs a database: pass db= to Baton/init_app, call "
                "db.init_app(app) first, or set BATON_DATABASE_URI"
            )
        with app.app_context():
            return db.engine.url

    def state(self, app: Flask | None = None) -> AppState:
        """This extension's state for ``app`` (default: the current app).

        ``get_state`` with one more check: the app was given to this very
        ``Baton`` (its state holds this registry of steps). The public
        methods that read or write the tables use ``state().ready()``, which
        raises ``SchemaError`` while the schema is missing or outdated.
        """
        state = get_state(app)
        if state.steps is not self.steps:
            raise SetupError("flask_baton is not registered on this app: did you call baton.init_app(app)?")
        return state

    # -- steps ---------------------------------------------------------------

    def step(
        self,
        func: StepFunction | None = None,
        *,
        name: str | None = None,
        **options: Any,
    ) -> Any:
        """Declare a step: ``@baton.step`` or ``@baton.step(retries=3, retry_delay=5)``.

        Options: ``retries``, ``retry_delay``, ``retry_backoff``, ``queue``,
        ``priority``, ``timeout``, ``on_dep_cancelled``, ``on_dep_discarded``;
        ``rate_limit`` (a ``BATON_RATE_LIMITS`` key, or a function of the job
        returning one) and ``tokens`` (the tokens a run is estimated to use,
        or a function of the job): see ``docs/llm.md``.
        """

        def register(fn: StepFunction) -> Step:
            step = Step(fn, name=name or fn.__name__, **options)
            if step.name in self.steps:
                raise DuplicateStepError(
                    step.name,
                    f"a step named {step.name!r} is already registered "
                    f"({self.steps[step.name].func.__module__}); pass name= to tell them apart",
                )
            declared_limits((s.name, s.rate_limit) for s in [*self.steps.values(), step])  # no two disagree
            self.steps[step.name] = step
            return step

        return register(func) if func is not None else register

    def llm_step(
        self,
        func: StepFunction | None = None,
        *,
        name: str | None = None,
        **options: Any,
    ) -> Any:
        """Declare a step that calls a paid, slow, flaky model.

        Runs on the ``llm`` queue (its own consumer pool: ``flask baton worker
        --queue llm``), retries with exponential backoff and full jitter, and
        times out after ``timeout`` seconds (default ``BATON_LLM_TIMEOUT``).
        ``LLM_STEP_DEFAULTS`` are its defaults; other options as ``step``.
        """
        return self.step(func, name=name, retry_jitter=True, llm=True, **{**LLM_STEP_DEFAULTS, **options})

    # -- schedules -----------------------------------------------------------

    def schedule(self, name: str, crontab: str, build: Build | None = None, *, overlap: Overlap = "skip") -> Any:
        """Insert the workflow ``build()`` returns at every tick of ``crontab`` (UTC), once per tick.

        ``baton.schedule("nightly", "0 3 * * *", build=make_report)``, or as a
        decorator on the function building the workflow:
        ``@baton.schedule("every-5-min", "*/5 * * * *")``. The consumers of
        the default queue check the schedules at least once a minute; the
        database lets one of them insert each tick's workflow. ``overlap``:
        ``"skip"`` a tick while a workflow this schedule started still runs
        (the default), or ``"allow"`` it. ``build`` may be called by several
        consumers for one tick (one workflow is kept), so it should only
        build. A crontab that does not parse raises ``ScheduleError`` naming
        the schedule and the field, and declares nothing.
        """

        def register(fn: Build) -> Build:
            schedule = declare(name, crontab, fn, overlap)
            if name in self.schedules:
                raise ScheduleError(name, "a schedule with this name is already declared; give each its own name")
            self.schedules[name] = schedule
            return fn

        return register(build) if build is not None else register

    # -- database ------------------------------------------------------------

    def create_schema(self, app: Flask | None = None) -> tuple[int, int]:
        """Create or upgrade flask_baton's tables; returns (old, new) schema versions."""
        return self.state(app).store.upgrade(time.time())

    def cancel_workflow(self, workflow_id: str, reason: str = "workflow cancelled") -> list[str]:
        """Cancel a running workflow and its unsettled steps; return their names."""
        return control.cancel_workflow(self.state().ready(), workflow_id, reason)

    def retry_step(self, workflow_id: str, step_name: str) -> control.Retried:
        """Run a discarded or cancelled step again, with the dependents it failed.

        Returns the steps re-armed; ``.left_cancelled`` names the dependents
        that stay cancelled, and why.
        """
        return control.retry_step(self.state().ready(), workflow_id, step_name)

    def retry_workflow(self, workflow_id: str) -> control.Retried:
        """Run every discarded or cancelled step of a finished workflow again; return them."""
        return control.retry_workflow(self.state().ready(), workflow_id)

    def resume_workflow(self, workflow_id: str) -> control.Retried:
        """Run again what a user's cancel stopped (not the steps that failed on their own); return them."""
        return control.resume_workflow(self.state().ready(), workflow_id)

    def set_budget(self, workflow_id: str, budget_usd: float) -> list[str]:
        """Set (or raise) a workflow's spend cap and release the steps a cap held; return their names.

        Released steps are checked again as they start, so a cap still
        reached (this one, or ``BATON_BUDGET_USD_PER_DAY``) holds them again.
        Steps the cap cancelled stay cancelled: ``resume_workflow`` runs them again.
        """
        return budget_control.set_budget(self.state().ready(), workflow_id, budget_usd)

    def signal(self, workflow_id: str, name: str, payload: Any, *, by: str | None = None) -> list[str]:
        """Send the signal ``name`` to a running workflow; return the steps it woke (``flask_baton.waits``).

        ``payload`` (JSON, not None) is what ``job.signal(name)`` returns;
        ``by`` records who sent it. A signal no step waits for yet is kept
        for the step that will. Refused with ``SignalError`` (nothing
        stored) when the workflow is not running, a signal of that name was
        sent already, or the payload is not JSON.
        """
        return waits.signal(self.state().ready(), workflow_id, name, payload, by)

    def cancel_workflows(self, workflow_ids: Sequence[str], reason: str = "workflow cancelled") -> list[BulkResult]:
        """``cancel_workflow`` each of them; one ``BulkResult`` per workflow, skipped ones saying why."""
        return bulk.cancel_workflows(self.state().ready(), workflow_ids, reason)

    def retry_workflows(self, workflow_ids: Sequence[str]) -> list[BulkResult]:
        """``retry_workflow`` each of them; one ``BulkResult`` per workflow, skipped ones saying why."""
        return bulk.retry_workflows(self.state().ready(), workflow_ids)

    def resume_workflows(self, workflow_ids: Sequence[str]) -> list[BulkResult]:
        """``resume_workflow`` each of them; one ``BulkResult`` per workflow, skipped ones saying why."""
        return bulk.resume_workflows(self.state().ready(), workflow_ids)

    # -- reading -------------------------------------------------------------

    def status(self, workflow_id: str) -> WorkflowStatus:
        """Counts per step state, timing, outcome and cost of a workflow, in one query."""
        status = self.state().ready().query.workflow_status(workflow_id)
        if status is None:
            raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
        return status

    def explain(self, workflow_id: str, step_name: str) -> Explanation:
        """Why a step is where it is: the dependencies it waits on, when it runs next."""
        return explain_step(self.state().ready().query, workflow_id, step_name, time.time())

    def export(self, workflow_id: str, format: str = "mermaid") -> str:
        """The workflow as a ``"mermaid"`` or ``"dot"`` diagram, or as ``"json"``."""
        return export_workflow(self.state().ready().query, workflow_id, format)

    def rate_limits(self) -> list[RateLimitUsage]:
        """How much of each rate-limit key in use is used now, by key: calls, tokens, slots, waiters.

        ``usage.describe(time.time())`` says it in words:
        ``"openai: 38 of 40 rpm, 61,200 of 90,000 tpm, 5 waiting"``.
        """
        return pacing.usage(self.state().ready(), time.time())

    @property
    def query(self) -> Query:
        """Read workflows and steps of the current app."""
        return self.state().ready().query

    @property
    def stats(self) -> Stats:
        """LLM usage and cost totals of the current app."""
        return Stats(self.state().ready().engine)

    @property
    def huey(self) -> Huey:
        """The current app's default Huey instance."""
        return self.state().queues.huey()


def build_state(
    app: Flask,
    config: BatonConfig,
    store: Store,
    huey: Huey,
    steps: Mapping[str, Step],
    schedules: Mapping[str, Schedule],
) -> AppState:
    """Everything flask_baton keeps for ``app``, made whole at once (``init_app``).

    The Huey tasks find the state when they run (``get_state(app)``), so
    nothing here needs the state before it exists.
    """
    return AppState(
        app=app,
        config=config,
        store=store,
        steps=steps,
        queues=Queues(
            huey,
            run=_in_app(app, run_node),
            hand_back=_in_app(app, hand_back),
            sweep=_in_app(app, sweep),
            serving=_in_app(app, serving),
            schedules=_in_app(app, run_due),
        ),
        events=transport_for(config, store.engine),
        query=Query(store.engine),
        schema_check=SchemaCheck(store),
        schedules=schedules,
        limiter=limiter_for(config, store, huey),
    )


def _in_app(app: Flask, func: Callable[..., object]) -> Callable[..., None]:
    """A Huey task body: ``func(state, *args)`` inside ``app``'s context, with ``app``'s state."""

    def run(*args: Any) -> None:
        with app.app_context():
            func(get_state(app), *args)

    return run
