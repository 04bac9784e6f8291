"""The reference pages are complete, and every relative link of the documentation lands.

``docs/configuration.md`` has one table of every config key and
``docs/errors.md`` one of every exception with its bases; both are compared
with the code, so a new key or exception cannot go undocumented. Links are
checked as GitHub follows them (the file exists, the ``#anchor`` is one of its
headings); the Sphinx build checks the pages' links again its own way.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import flask_baton
from flask_baton import errors
from flask_baton.config import SETTINGS

from .docs_support import DOCS, ROOT, documents

LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
FENCE = re.compile(r"^\s*```")


def table(page: Path, header: str) -> list[list[str]]:
    """The cells of the Markdown table whose header row starts with ``| header |``."""
    lines = page.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def test_the_configuration_page_lists_every_setting_once() -> None:
    keys = [row[0].strip("`") for row in table(DOCS / "configuration.md", "key")]
    assert len(keys) == len(set(keys)), "a key is listed twice"
    assert sorted(set(SETTINGS) - set(keys)) == [], "settings the table leaves out"
    assert sorted(set(keys) - set(SETTINGS)) == [], "keys in the table that are no setting"


def test_the_errors_page_lists_every_exception_with_its_bases() -> None:
    documented = {
        row[0].strip("`"): [base.strip("` ") for base in row[1].split(",")]
        for row in table(DOCS / "errors.md", "exception")
    }
    exceptions = {
        name: [base.__name__ for base in cls.__bases__]
        for name, cls in vars(errors).items()
        if isinstance(cls, type)
        and issubclass(cls, Exception)
        and not issubclass(cls, Warning)
        and cls.__module__ == errors.__name__
    }
    assert documented == exceptions
    assert all(issubclass(getattr(errors, name), errors.BatonError) for name in documented)
    assert set(documented) <= set(flask_baton.__all__), "every exception is importable from flask_baton"
    assert "`flask_baton.ConfigWarning`" in (DOCS / "errors.md").read_text()


def github_anchor(heading: str) -> str:
    """The anchor GitHub (and MyST's heading anchors) give a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found = set()
    in_fence = False
    for line in page.read_text().splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            found.add(github_anchor(line.lstrip("#")))
    return found


def relative_links(document: Path) -> list[str]:
    """The targets of the document's Markdown links that are not URLs."""
    text = re.sub(r"`[^`\n]*`", "", document.read_text())  # links inside code are not links
    return [m["target"] for m in LINK.finditer(text) if not re.match(r"[a-z]+:", m["target"])]


@pytest.mark.parametrize("document", documents(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_lands_on_a_file_and_heading(document: Path) -> None:
    broken = []
    for target in relative_links(document):
        file_part, _, anchor = target.partition("#")
        path = (document.parent / file_part).resolve() if file_part else document
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.relative_to(ROOT)}")
    assert broken == []


def test_the_readme_links_every_page_of_the_documentation() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in relative_links(ROOT / "README.md")}
    unlinked = {page.name for page in DOCS.glob("*.md")} - {page.name for page in linked if page.parent == DOCS}
    # The quick start is the README's own section; the changelog and license
    # pages show CHANGELOG.md and LICENSE, which the README links.
    assert unlinked <= {"quickstart.md", "changelog.md", "license.md"}
