"""Sphinx configuration of flask_baton's documentation site.

The pages are Markdown (MyST), so they read the same on GitHub and here, and
tests/test_docs_examples.py runs their Python blocks as printed. Build them
with ``python3 dev.py docs``: warnings are errors, references are checked
(nitpicky), as ``.ci/run`` builds them.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx

import flask_baton

project = "flask_baton"
author = "the flask_baton authors"
copyright = "2026, the flask_baton authors"  # as in LICENSE
release = flask_baton.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "screenshots"]

# -- MyST ------------------------------------------------------------------------
# Headings get GitHub's anchors (`cli.md#exit-codes`), so one link works in both places.
myst_heading_anchors = 3

# -- autodoc ---------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True}
# Names the API pages mention that belong to the standard library or to
# other libraries. The build runs offline, without intersphinx, so Sphinx
# cannot link them; nitpicky mode is told they live elsewhere instead of
# reporting each one. Every flask_baton name must resolve.
nitpick_ignore_regex = [
    ("py:.*", r"(collections|enum|typing|flask|flask_sqlalchemy|sqlalchemy|huey)\..*"),
    ("py:.*", r"(Flask|SQLAlchemy|Huey|Engine)"),
    ("py:.*", r"(Exception|RuntimeError|ValueError|LookupError|TimeoutError|UserWarning)"),
]

# -- HTML ------------------------------------------------------------------------
html_theme = "furo"
html_title = f"flask_baton {release}"
html_static_path: list[str] = []

# -- type aliases --------------------------------------------------------------
# Signatures print the aliases of flask_baton.steps by their short names (the
# modules use `from __future__ import annotations`); api.md documents them.
# autodoc_type_aliases would link them but garbles `StepFunction | None`.
TYPE_ALIASES = {name: f"flask_baton.steps.{name}" for name in ("StepFunction", "DepHook")}


def link_type_aliases(app: Sphinx, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a short alias name in a signature to its entry on the API page."""
    target = TYPE_ALIASES.get(node.get("reftarget"))
    if node.get("refdomain") != "py" or target is None:
        return None
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, "type", target, node, contnode)


def setup(app: Sphinx) -> None:
    app.connect("missing-reference", link_type_aliases)
