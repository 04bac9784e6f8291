"""Trimming tracebacks: the step's own frames stay, flask_baton's and Huey's fold into one line each run."""

from __future__ import annotations

import traceback
from pathlib import Path

import huey

import flask_baton
from flask_baton import dag
from flask_baton.tracebacks import package_of, trim

RUNNER = str(Path(flask_baton.__file__).parent / "runner.py")
#: Huey as another host installed it: a different place, the same modules.
HUEY_API = "/usr/lib/python3.12/site-packages/huey/api.py"
#: A project checked out in a folder that happens to be called flask_baton.
USER_STEP = "/srv/flask_baton/tests/steps.py"


def frame(path: str, line: int, name: str, source: str, carets: str | None = None) -> str:
    text = f'  File "{path}", line {line}, in {name}\n    {source}\n'
    return text + (f"    {carets}\n" if carets else "")


def test_runs_of_internal_frames_fold_into_one_line_each_and_the_steps_frames_stay_whole() -> None:
    text = (
        "Traceback (most recent call last):\n"
        + frame(HUEY_API, 410, "_execute", "task_value = task.execute()", "^^^^^^^^^^^^^^")
        + frame(RUNNER, 73, "_execute", "value = _call(state, step, job)", "~~~~~^^^^^^^^^^^^^^^^^")
        + frame(RUNNER, 137, "_call", "return step.func(job)")
        + frame(USER_STEP, 55, "fetch", 'raise RuntimeError("boom")', "^^^^^^^^^^^^^^^^^^^^^^^^^^")
        + "RuntimeError: boom\n"
    )

    trimmed = trim(text)

    assert trimmed.hidden == 3
    assert trimmed.text == (
        "Traceback (most recent call last):\n"
        "  … 3 frames of flask_baton/huey …\n"
        + frame(USER_STEP, 55, "fetch", 'raise RuntimeError("boom")', "^^^^^^^^^^^^^^^^^^^^^^^^^^")
        + "RuntimeError: boom\n"
    )
    assert [piece.folded for piece in trimmed.pieces] == [False, True, False]


def test_a_real_traceback_through_flask_baton_keeps_the_callers_frame_and_the_exception() -> None:
    try:
        dag.topological_order([("a", ["b"]), ("b", ["a"])])
    except Exception:
        text = traceback.format_exc()
    assert "flask_baton/dag.py" in text

    trimmed = trim(text)

    assert trimmed.hidden >= 1 and "flask_baton/dag.py" not in trimmed.text
    assert f'File "{__file__}"' in trimmed.text
    assert trimmed.text.rstrip().splitlines()[-1] == text.rstrip().splitlines()[-1]
    assert "frame" in next(piece.text for piece in trimmed.pieces if piece.folded)


def test_chained_exceptions_and_repeated_lines_are_kept_and_each_run_folds_on_its_own() -> None:
    text = (
        "Traceback (most recent call last):\n"
        + frame(USER_STEP, 10, "inner", "open(path)")
        + "FileNotFoundError: gone\n"
        "\nDuring handling of the above exception, another exception occurred:\n\n"
        "Traceback (most recent call last):\n"
        + frame(RUNNER, 73, "_execute", "value = _call(state, step, job)")
        + frame(USER_STEP, 12, "outer", "inner()")
        + "  [Previous line repeated 2 more times]\n"
        + frame(RUNNER, 137, "_call", "return step.func(job)")
        + "ValueError: wrapped\n"
    )

    trimmed = trim(text)

    assert trimmed.hidden == 2
    assert trimmed.text.count("… 1 frame of flask_baton …") == 2
    for kept in ("FileNotFoundError: gone", "During handling", "[Previous line repeated", "ValueError: wrapped"):
        assert kept in trimmed.text


def test_frames_inside_an_exception_group_fold_within_its_margin() -> None:
    group = (
        "  | Traceback (most recent call last):\n"
        f'  |   File "{RUNNER}", line 73, in _execute\n'
        "  |     value = _call(state, step, job)\n"
        f'  |   File "{USER_STEP}", line 9, in one\n'
        "  |     raise KeyError(1)\n"
        "  | KeyError: 1\n"
    )

    trimmed = trim(group)

    assert trimmed.hidden == 1
    assert "  |   … 1 frame of flask_baton …\n" in trimmed.text
    assert f'  |   File "{USER_STEP}", line 9, in one\n  |     raise KeyError(1)\n' in trimmed.text


def test_text_that_is_no_traceback_is_left_as_it_is() -> None:
    reason = "consumer host:1 stopped renewing its lease (61s ago); step rescued"
    assert trim(reason).text == reason and trim(reason).hidden == 0
    assert trim("").pieces == ()


def test_only_files_of_the_packages_themselves_count_as_theirs() -> None:
    assert package_of(RUNNER) == "flask_baton"
    assert package_of(str(Path(flask_baton.__file__).parent / "store" / "engine.py")) == "flask_baton"
    assert package_of(str(Path(huey.__file__).parent / "consumer.py")) == "huey"
    assert package_of(HUEY_API) == "huey"
    assert package_of("C:\\venv\\Lib\\site-packages\\flask_baton\\runner.py") == "flask_baton"
    assert package_of(USER_STEP) is None
    assert package_of("/srv/app/huey_tasks.py") is None
    assert package_of("/srv/app/flask_baton/not_a_module_of_it.py") is None
