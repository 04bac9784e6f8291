"""What every ``flask baton`` command shares: the group, the app's state, ids, exit codes.

Exit codes a script can rely on:

- ``0``: done (``status --watch``: the workflow completed);
- ``1``: the command could not do it: no workflow has that id, an id prefix
  matches several, the workflow or step is not in a state that allows the
  action, ``prune`` was declined or could not ask;
- ``2``: the command line is wrong (click's usage errors): an unknown option,
  a missing argument, a value such as ``--state`` that is not one of its choices;
- ``3`` / ``4``: ``status --watch`` saw the workflow end ``failed`` / ``cancelled``;
- ``130``: ``status --watch`` was stopped with Ctrl-C.
"""

from __future__ import annotations

from typing import Any

import click

from ..appstate import AppState, get_state
from ..errors import BatonError
from ..records import WorkflowRecord
from ..states import WorkflowState

EXIT_FAILED = 3
EXIT_CANCELLED = 4
EXIT_INTERRUPTED = 130
#: ``status --watch``'s exit code for each way a workflow ends.
OUTCOME_EXIT_CODES = {
    WorkflowState.COMPLETED: 0,
    WorkflowState.FAILED: EXIT_FAILED,
    WorkflowState.CANCELLED: EXIT_CANCELLED,
}


class BatonGroup(click.Group):
    """A group whose commands fail on flask_baton's own errors the way click's do.

    A ``BatonError`` (no such workflow, an ambiguous id prefix, a step that
    cannot be retried, a missing or outdated schema, ...) already names the culprit: it becomes a
    ``ClickException``, so the user sees its message and exit code 1, not a
    traceback, and nothing is changed.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BatonError as exc:
            raise click.ClickException(str(exc)) from None


@click.group("baton", cls=BatonGroup)
def baton_cli() -> None:
    """flask_baton workflows: consumers, schema, status, cancel and retry, export."""


def app_state(*, check_schema: bool = True) -> AppState:
    """The current app's flask_baton state (``get_state``), its schema checked unless told otherwise."""
    state = get_state()
    return state.ready() if check_schema else state


def resolve(workflow_id: str) -> WorkflowRecord:
    """The workflow a command was given: its whole id or a unique prefix (such as the dashboard's short id)."""
    return app_state().query.resolve_workflow_id(workflow_id)
