"""An accessibility check of a page open in Playwright: axe-core, vendored for the tests only.

``tests/vendor/axe.min.js`` is axe-core from npm (see ``tests/vendor/README.md``:
version, license, checksum). It is injected into the page under test, never
served by flask_baton. ``serious_violations`` lists what axe rates serious or
critical, one line each, so a failing test says what to fix and where.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
#: The impacts a page must have none of.
FAILING_IMPACTS = ("serious", "critical")


def axe_results(page: Any) -> dict[str, Any]:
    """Run axe-core on ``page`` (WCAG 2 A and AA rules, and axe's best practices) and return its results."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate(  # type: ignore[no-any-return]
        """() => axe.run(document, {
            runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]},
            resultTypes: ["violations"],
        })"""
    )


def serious_violations(page: Any) -> list[str]:
    """Each serious or critical violation on ``page``: rule, impact, and the elements, as text."""
    found = []
    for violation in axe_results(page)["violations"]:
        if violation["impact"] not in FAILING_IMPACTS:
            continue
        for node in violation["nodes"]:
            found.append(
                f"{violation['id']} ({violation['impact']}): {violation['help']} at {node['target']}: "
                f"{node.get('failureSummary', '').splitlines()[-1].strip() if node.get('failureSummary') else ''}"
            )
    return found
