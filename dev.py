#!/usr/bin/env python3
"""The two commands for working on flask_baton, on any machine with Python 3.11+.

    python3 dev.py example [--port 5000] [--host 127.0.0.1] [--workers 2] [--[no-]debug]
        Run the example app: its Huey consumer and its web server, as two
        child processes. Ctrl-C (or SIGTERM) stops both cleanly.

    python3 dev.py test [--python X.Y] [--huey-min] [PYTEST ARGS...]
        Run the test-suite with pytest; exits with pytest's exit code.
        --python X.Y (or a path) runs it on another Python, in .venv-pyXY;
        --huey-min on the oldest Huey pyproject.toml allows, in .venv-huey-min
        (both: .venv-pyXY-huey-min). .ci/run runs all three.

    python3 dev.py check
        ruff (lint and format) and mypy --strict on flask_baton/, as CI runs them.

    python3 dev.py docs [--out DIR]
        Build the documentation site (Sphinx) from docs/ into DIR (default
        docs/_build/html), warnings as errors; exits non-zero if it fails.
        .ci/run builds it this way too.

Each first makes sure its venv (``.venv`` next to this file, unless said
otherwise) exists and has the project installed with ``pip install -e '.[dev,bench]'``
(``bench``: Celery and RQ, so tests/test_bench_peers.py keeps the benchmark's
peers working on every run).
The install runs again only when pyproject.toml changes (a stamp file in the
venv records its hash), so every run after the first starts at once.

Only the standard library is used here: this script is what installs
everything else.
"""

from __future__ import annotations

import sys

if sys.version_info < (3, 11):  # noqa: UP036 -- says so on an older Python instead of failing on syntax
    sys.exit(f"dev.py needs Python 3.11 or newer; this is {sys.version.split()[0]}")

import argparse
import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
POSIX = os.name == "posix"
#: Seconds a child gets to stop on its own before it is killed.
STOP_TIMEOUT = 10.0


# -- the virtualenvs ----------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """One virtualenv dev.py installs the project into: which Python, which pins."""

    venv: Path
    #: The interpreter that creates the venv.
    base_python: str
    #: Requirements installed with ``.[dev,bench]``, e.g. ``huey==3.0.0``.
    pins: tuple[str, ...] = ()


#: The developer's setup: ``.venv`` on the Python running dev.py, newest releases.
DEFAULT = Setup(ROOT / ".venv", sys.executable)


def venv_python(setup: Setup) -> Path:
    """The venv's interpreter."""
    return setup.venv / ("bin/python" if POSIX else "Scripts/python.exe")


def venv_environment(setup: Setup) -> dict[str, str]:
    """This process's environment as if the venv were activated."""
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env["VIRTUAL_ENV"] = str(setup.venv)
    env["PATH"] = str(venv_python(setup).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"  # the children's logs show up as they happen
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return env


def install_fingerprint(setup: Setup) -> dict[str, str]:
    """What the installed venv depends on; a change means install again."""
    return {
        "pyproject.toml": hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest(),
        "python": os.path.realpath(venv_python(setup)),
        "pins": " ".join(setup.pins),
    }


@contextlib.contextmanager
def install_lock(setup: Setup) -> Iterator[None]:
    """Serialise installs when several dev.py runs start at once (POSIX only)."""
    if not POSIX:
        yield
        return
    import fcntl

    with open(setup.venv / ".flask-baton-dev-install.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_venv(setup: Setup = DEFAULT) -> Path:
    """Create the setup's venv if needed and install the project if it changed; return its python."""
    python = venv_python(setup)
    name = setup.venv.relative_to(ROOT)
    if not python.exists():
        print(f"dev.py: creating {name} with {setup.base_python}", flush=True)
        if subprocess.run([setup.base_python, "-m", "venv", str(setup.venv)]).returncode != 0:
            sys.exit(f"dev.py: could not create {name} with {setup.base_python}")
    stamp = setup.venv / ".flask-baton-dev-install.json"
    with install_lock(setup):
        wanted = install_fingerprint(setup)
        try:
            installed = json.loads(stamp.read_text())
        except (OSError, ValueError):
            installed = None
        if installed != wanted:
            reason = "first run" if installed is None else "pyproject.toml changed"
            command = ["pip", "install", "-e", ".[dev,bench]", *setup.pins]
            print(f"dev.py: installing the project into {name} ({reason}): {' '.join(command)}", flush=True)
            result = subprocess.run([str(python), "-m", *command], cwd=ROOT, env=venv_environment(setup))
            if result.returncode != 0:
                sys.exit(f"dev.py: pip install failed (exit code {result.returncode})")
            stamp.write_text(json.dumps(wanted, indent=2) + "\n")
    return python


def find_python(wanted: str) -> tuple[str, str]:
    """An interpreter for ``--python`` (``3.13`` or a path) and its ``X.Y`` version.

    ``X.Y`` is looked for as ``pythonX.Y`` on PATH, then among pyenv's
    versions (a pyenv shim of an inactive version does not run, so each
    candidate is tried).
    """
    candidates = [wanted] if os.sep in wanted else [f"python{wanted}"]
    if os.sep not in wanted:
        pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
        candidates += [str(path) for path in sorted(pyenv.glob(f"versions/{wanted}*/bin/python{wanted}"), reverse=True)]
    for candidate in candidates:
        with contextlib.suppress(OSError):
            result = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
            )
            version = result.stdout.strip()
            if result.returncode == 0 and (os.sep in wanted or version == wanted):
                return candidate, version
    sys.exit(
        f"dev.py: no Python {wanted} found (tried {', '.join(candidates)}); install it, e.g. pyenv install {wanted}"
    )


def huey_floor() -> str:
    """``huey==X``, X being the oldest Huey pyproject.toml allows (its ``huey>=X``)."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in dependencies:
        match = re.fullmatch(r"huey\s*>=\s*([0-9][0-9.]*)(\s*,.*)?", requirement.strip())
        if match:
            return f"huey=={match.group(1)}"
    sys.exit("dev.py: pyproject.toml's dependencies have no 'huey>=X' to take the oldest Huey from")


def test_setup(python: str | None, huey_min: bool) -> Setup:
    """The setup ``dev.py test [--python X.Y] [--huey-min]`` runs in."""
    if python is None and not huey_min:
        return DEFAULT
    base, suffix = sys.executable, ""
    if python is not None:
        base, version = find_python(python)
        suffix = "-py" + version.replace(".", "")
    pins = (huey_floor(),) if huey_min else ()
    return Setup(ROOT / f".venv{suffix}{'-huey-min' if huey_min else ''}", base, pins)


# -- dev.py test ------------------------------------------------------------------


def run_tests(argv: Sequence[str]) -> int:
    """Run pytest in the chosen venv from the repository root; return its exit code.

    Options of dev.py itself come first; the rest goes to pytest as is.
    """
    python_version: str | None = None
    huey_min = False
    args = list(argv)
    while args and (args[0] in ("--python", "--huey-min") or args[0].startswith("--python=")):
        option = args.pop(0)
        if option == "--huey-min":
            huey_min = True
        elif option.startswith("--python="):
            python_version = option.split("=", 1)[1]
        elif args:
            python_version = args.pop(0)
        else:
            sys.exit("dev.py: --python needs a version (3.13) or an interpreter's path")
    setup = test_setup(python_version, huey_min)
    python = ensure_venv(setup)
    command = [str(python), "-m", "pytest", *args]
    os.chdir(ROOT)
    if POSIX:
        sys.stdout.flush()
        sys.stderr.flush()
        # Become pytest: Ctrl-C and the exit code need no relaying.
        os.execve(python, command, venv_environment(setup))
    return subprocess.call(command, env=venv_environment(setup))


# -- dev.py check ------------------------------------------------------------------


def run_checks(argv: Sequence[str]) -> int:
    """Lint, format and type checks, as CI runs them; each runs, the first failure's code is returned."""
    if argv:
        print("dev.py check takes no arguments", file=sys.stderr)
        return 2
    python = str(ensure_venv())
    checks = [
        ("ruff check", [python, "-m", "ruff", "check", "."]),
        ("ruff format --check", [python, "-m", "ruff", "format", "--check", "."]),
        ("mypy --strict flask_baton", [python, "-m", "mypy"]),
    ]
    status = 0
    for name, command in checks:
        code = subprocess.call(command, cwd=ROOT, env=venv_environment(DEFAULT))
        if code:
            print(f"dev.py: {name} failed (exit code {code})", file=sys.stderr, flush=True)
            status = status or code
    return status


# -- dev.py docs -------------------------------------------------------------------


def build_docs(argv: Sequence[str]) -> int:
    """Build docs/ with Sphinx, every warning an error and every reference checked."""
    parser = argparse.ArgumentParser(prog="dev.py docs", description="Build the documentation site.")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "docs" / "_build" / "html",
        help="where the HTML goes (default docs/_build/html)",
    )
    args = parser.parse_args(argv)
    python = ensure_venv()
    # -W: a warning fails the build; --keep-going: report them all first;
    # -n: nitpicky, every cross-reference must resolve; -E: read every page again,
    # as a saved environment would not repeat the warnings of unchanged pages;
    # -q: print only the warnings.
    command = [
        str(python),
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-n",
        "-E",
        "-q",
        "-b",
        "html",
        str(ROOT / "docs"),
        str(args.out.resolve()),
    ]
    status = subprocess.call(command, cwd=ROOT, env=venv_environment(DEFAULT))
    if status == 0:
        print(f"dev.py: documentation built: {args.out.resolve() / 'index.html'}", flush=True)
    else:
        print(f"dev.py: the documentation build failed (exit code {status}; see above)", file=sys.stderr)
    return status


# -- dev.py example ---------------------------------------------------------------


#: Names of the stop signals received; the supervision loops end when it is non-empty.
_stop_signals: list[str] = []


def _on_stop_signal(signum: int, frame: object) -> None:
    _stop_signals.append(signal.Signals(signum).name)


def _child_setup() -> Callable[[], None] | None:
    """Linux: a pre-exec hook so children get SIGTERM if dev.py itself is killed.

    libc is loaded here, in the parent: the hook runs between fork and exec,
    where importing or loading libraries is best avoided.
    """
    if sys.platform != "linux":
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGTERM)


def start_child(name: str, command: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start a child in its own session, so only dev.py decides how it stops."""
    print(f"dev.py: starting {name}: {' '.join(command[2:])}", flush=True)
    if POSIX:
        return subprocess.Popen(
            command, cwd=ROOT, env=venv_environment(DEFAULT), start_new_session=True, preexec_fn=_child_setup()
        )
    return subprocess.Popen(command, cwd=ROOT, env=venv_environment(DEFAULT))


def stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """Ask every running child to stop, then kill the ones that do not in time.

    The consumers get SIGINT, Huey's graceful stop (running steps finish);
    the web server gets SIGTERM.
    """
    for name, child in children.items():
        if child.poll() is None:
            if POSIX:
                child.send_signal(signal.SIGINT if name.endswith("worker") else signal.SIGTERM)
            else:
                child.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"dev.py: {name} did not stop within {STOP_TIMEOUT:.0f}s; killing it", flush=True)
            child.kill()
            child.wait()


def wait_for_port(host: str, port: int, child: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
    """True once ``host:port`` accepts connections; False if the child died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None and not _stop_signals:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.1)
    return False


def run_example(argv: Sequence[str]) -> int:
    """Run the example app's consumer and web server until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="dev.py example", description="Run the example app (consumer + web).")
    parser.add_argument("--host", default="127.0.0.1", help="interface to serve on (default %(default)s)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 5000)), help="default %(default)s")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="worker threads of each consumer, default and llm queue (default %(default)s)",
    )
    parser.add_argument(
        "--debug",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Flask debug mode, which opens the dashboard without BATON_DASHBOARD_AUTH "
        "(default: on when serving on a loopback address only, as its debugger runs code)",
    )
    args = parser.parse_args(argv)
    if args.debug is None:
        args.debug = args.host in ("127.0.0.1", "localhost", "::1")

    python = str(ensure_venv())
    flask = [python, "-m", "flask", "--app", "example_app"]
    # Create the instance folder and the tables once, before two processes race to.
    if subprocess.run([*flask, "baton", "db", "upgrade"], cwd=ROOT, env=venv_environment(DEFAULT)).returncode != 0:
        print("dev.py: the example app failed to start (see above)", file=sys.stderr)
        return 1

    signal.signal(signal.SIGINT, _on_stop_signal)
    signal.signal(signal.SIGTERM, _on_stop_signal)
    children: dict[str, subprocess.Popen[bytes]] = {}
    local_host = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    url = f"http://{local_host}:{args.port}/"
    status = 0
    try:
        worker = [*flask, "baton", "worker", "--workers", str(args.workers)]
        children["worker"] = start_child("worker", worker)
        # LLM steps run on their own queue, with their own pool of consumers.
        children["llm worker"] = start_child("llm worker", [*worker, "--queue", "llm"])
        web = [*flask, *(["--debug"] if args.debug else []), "run", "--host", args.host, "--port", str(args.port)]
        # One process per role: the reloader would fork the web server and
        # reload steps the consumer still runs in their old version.
        children["web"] = start_child("web", [*web, "--no-reload", "--with-threads"])
        if wait_for_port(local_host, args.port, children["web"]):
            print(
                f"\n  flask_baton example running at {url}  (dashboard: {url}baton)\n  Ctrl-C stops it.\n", flush=True
            )
        elif children["web"].poll() is None and not _stop_signals:
            print(f"dev.py: the web server is not answering on {url} yet; still waiting", flush=True)
        while not _stop_signals:
            exited = [(name, child.returncode) for name, child in children.items() if child.poll() is not None]
            if exited:
                name, code = exited[0]
                print(f"dev.py: {name} exited with code {code}; stopping", file=sys.stderr, flush=True)
                status = 1
                break
            time.sleep(0.2)
        else:
            print(f"\ndev.py: {_stop_signals[0]} received, stopping the worker and the web server", flush=True)
    finally:
        # Stopping takes a moment; a second Ctrl-C must not cut it short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_children(children)
        print("dev.py: stopped", flush=True)
    return status


# -- entry point --------------------------------------------------------------------


def main(argv: Sequence[str]) -> int:
    commands = {"check": run_checks, "docs": build_docs, "example": run_example, "test": run_tests}
    if not argv or argv[0] not in commands:
        print(__doc__.strip(), file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help", "help") else 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
