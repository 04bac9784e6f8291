"""Who may see the dashboard, and CSRF tokens for the actions that change state.

Access: ``BATON_DASHBOARD_AUTH`` is a callable run inside the request (it can
look at ``flask_login.current_user``, ``request.authorization``, ...); truthy
means allowed. Without one the dashboard only opens when ``app.debug`` is on.
The check runs before every dashboard request, the websockets included.

CSRF: one random token per session (Flask's signed cookie session, so the
app needs a ``SECRET_KEY``), sent back by every POST as the ``csrf_token``
form field or the ``X-CSRF-Token`` header (HTMX sends it via ``hx-headers``).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Response, abort, current_app, g, request, session

from ..config import BatonConfig

SESSION_KEY = "_baton_csrf"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"

LOCKED = (
    "The flask_baton dashboard is locked. Set BATON_DASHBOARD_AUTH to a callable that "
    "returns True for requests that may see it (it opens without one only in debug mode)."
)
REFUSED = "Forbidden: BATON_DASHBOARD_AUTH refused this request."
NO_SECRET_KEY = (
    "Dashboard actions are disabled: the app has no SECRET_KEY, and the CSRF token that "
    "protects them lives in the session. Set app.config['SECRET_KEY'] to enable them."
)
BAD_TOKEN = "The CSRF token is missing or does not match this session. Reload the page and try again."


def _refuse(status: int, message: str) -> None:
    abort(Response(message + "\n", status, mimetype="text/plain"))


def check_access(config: BatonConfig) -> None:
    """Abort with 403 unless this request may use the dashboard; remember who it let in (``user``)."""
    auth = config.dashboard_auth
    if auth is None:
        if not current_app.debug:
            _refuse(403, LOCKED)
        return
    allowed = auth()
    if not allowed:
        _refuse(403, REFUSED)
    g.baton_user = user_name(allowed)


def user_name(allowed: Any) -> str | None:
    """Who ``BATON_DASHBOARD_AUTH`` let in, from what it returned: a string is the name; an object
    with a ``name`` or ``username`` string (a user model) gives that; ``True`` names nobody.
    """
    if isinstance(allowed, str):
        return allowed
    for attribute in ("name", "username"):
        value = getattr(allowed, attribute, None)
        if isinstance(value, str) and value:
            return value
    return None


def user() -> str | None:
    """The name of this request's user, as ``check_access`` read it (None: nobody named)."""
    name: str | None = g.get("baton_user")
    return name


def actions_enabled() -> bool:
    """Whether the app can keep a CSRF token (it has a secret key)."""
    return bool(current_app.secret_key)


def csrf_token() -> str | None:
    """This session's token (made on first use); ``None`` without a secret key."""
    if not actions_enabled():
        return None
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


def current_csrf_token() -> str | None:
    """This session's token if it has one (never sets a cookie: for websockets)."""
    if not actions_enabled():
        return None
    token = session.get(SESSION_KEY)
    return token if isinstance(token, str) and token else None


def check_csrf() -> None:
    """Abort with 400 unless the request carries this session's token."""
    if not actions_enabled():
        _refuse(400, NO_SECRET_KEY)
    expected = session.get(SESSION_KEY)
    sent = request.form.get(FORM_FIELD) or request.headers.get(HEADER)
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(expected.encode(), sent.encode()):
        _refuse(400, BAD_TOKEN)
