"""Helpers for browser tests: a system Chromium driven by Python Playwright.

Why this module exists:

* Playwright's own browser download (``playwright install``) cannot work on
  our machines or in CI: only package registries are reachable, not
  Playwright's CDN. Debian's ``chromium`` package can be installed, so the
  tests drive ``/usr/bin/chromium`` through ``executable_path`` and never ask
  Playwright for a browser of its own.
* Machines are not kept between sessions, so the tests themselves install
  Chromium when it is missing (once per process) rather than relying on
  something installed by hand.
* Every launch gets a fresh, throw-away profile directory so tests never see
  each other's cookies, storage or cache, and nothing is left in /tmp.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import weakref
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only
    from playwright.sync_api import BrowserContext, Page, Playwright

CHROMIUM_PATH = "/usr/bin/chromium"
"""Where Debian's ``chromium`` package puts its launcher."""

CHROMIUM_ARGS: list[str] = [
    "--headless",
    "--no-sandbox",  # we run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",  # no GPU on the test machines
    "--disable-quic",
    "--no-first-run",
    # The tests may only talk to 127.0.0.1: keep Chromium from phoning home
    # (component updates, sync, safe-browsing lists, ...).
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Command-line flags for every test browser."""

_APT_TIMEOUT_S = 900
"""Upper bound for each apt-get step; a first install takes ~20-60 s."""

_TAIL_LINES = 40

_lock = threading.Lock()
_chromium_path: str | None = None
_chromium_error: RuntimeError | None = None


def _tail(text: str, lines: int = _TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _run_apt(args: list[str]) -> None:
    """Run one apt-get command, raising RuntimeError with its output's tail on failure."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Wait for the dpkg lock instead of failing at once when another process
    # (e.g. a parallel pytest worker) is installing at the same moment.
    cmd = ["apt-get", "-o", "DPkg::Lock::Timeout=300", *args]
    try:
        proc = subprocess.run(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=_APT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        if isinstance(out, bytes):
            out = out.decode("utf-8", "replace")
        raise RuntimeError(
            f"`{' '.join(cmd)}` did not finish within {_APT_TIMEOUT_S} s.\n--- last output ---\n{_tail(out)}"
        ) from exc
    if proc.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(cmd)}` failed with exit code {proc.returncode}; "
            f"cannot install Chromium for the browser tests.\n"
            f"--- last output ---\n{_tail(proc.stdout)}"
        )


def _install_chromium() -> str:
    if os.path.exists(CHROMIUM_PATH):
        return CHROMIUM_PATH
    if shutil.which("apt-get") is None:
        raise RuntimeError(
            f"{CHROMIUM_PATH} is missing and apt-get is not available to install it. "
            "Install Debian's/Ubuntu's `chromium` package (or make a Chromium "
            f"binary available at {CHROMIUM_PATH}) to run the browser tests."
        )
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise RuntimeError(
            f"{CHROMIUM_PATH} is missing and the tests are not running as root, "
            "so they cannot install it themselves. Install it with:\n"
            "    sudo apt-get update && sudo apt-get install -y chromium\n"
            "(Playwright's own browser download, `playwright install`, does not "
            "work here: only package registries are reachable.)"
        )
    _run_apt(["update"])
    _run_apt(["install", "-y", "chromium"])
    if not os.path.exists(CHROMIUM_PATH):
        raise RuntimeError(f"`apt-get install chromium` succeeded but {CHROMIUM_PATH} still does not exist.")
    return CHROMIUM_PATH


def ensure_chromium() -> str:
    """Return the path of the system Chromium, installing it via apt if needed.

    Runs at most once per process: the result (or the failure, so that every
    browser test fails fast with the same message instead of re-running apt)
    is cached.

    Raises:
        RuntimeError: Chromium is missing and could not be installed (not root,
            no apt-get, or apt-get failed; the message carries apt's output).
    """
    global _chromium_path, _chromium_error
    with _lock:
        if _chromium_path is not None:
            return _chromium_path
        if _chromium_error is not None:
            raise _chromium_error
        try:
            _chromium_path = _install_chromium()
        except RuntimeError as exc:
            _chromium_error = exc
            raise
        return _chromium_path


class LaunchedBrowser:
    """A headless Chromium with its own temporary profile.

    Wraps a Playwright persistent ``BrowserContext`` (closing it closes the
    browser process) and owns the temporary user-data-dir, which
    :meth:`close` deletes. Use it as a context manager, or call ``close()``.
    If neither happens, the directory is still removed when the object is
    garbage-collected or the interpreter exits.
    """

    def __init__(self, context: BrowserContext, user_data_dir: str) -> None:
        self.context: BrowserContext = context
        self.user_data_dir: str = user_data_dir
        self._closed = False
        self._finalizer = weakref.finalize(self, shutil.rmtree, user_data_dir, ignore_errors=True)

    @property
    def page(self) -> Page:
        """The page a persistent context opens with (a new one if it was closed)."""
        pages = self.context.pages
        return pages[0] if pages else self.context.new_page()

    def new_page(self) -> Page:
        """Open another tab in this browser."""
        return self.context.new_page()

    def close(self) -> None:
        """Close the browser, then delete its profile directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.context.close()
        finally:
            # context.close() returns once the browser process has exited, so
            # nothing writes into the profile any more.
            self._finalizer()

    def __enter__(self) -> LaunchedBrowser:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def launch_browser(
    playwright: Playwright,
    *,
    viewport: tuple[int, int] = (1280, 800),
) -> LaunchedBrowser:
    """Launch headless system Chromium with a fresh temporary profile.

    ``launch_persistent_context`` is used (rather than ``--user-data-dir`` in
    ``args``, which Playwright rejects) so the profile location is ours and is
    known to be removed on :meth:`LaunchedBrowser.close`.

    Args:
        playwright: the object from ``playwright.sync_api.sync_playwright()``.
        viewport: page size in CSS pixels, for stable screenshots.
    """
    executable = ensure_chromium()
    user_data_dir = tempfile.mkdtemp(prefix="baton-chromium-")
    try:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=user_data_dir,
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport={"width": viewport[0], "height": viewport[1]},
        )
    except BaseException:
        shutil.rmtree(user_data_dir, ignore_errors=True)
        raise
    return LaunchedBrowser(context, user_data_dir)
