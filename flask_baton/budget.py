"""Spend caps: what counts as a budget, when one is reached, and how that is said.

Pure: ``budget_control`` reads what was spent (``baton_step_stats``) and the
caps (a workflow's ``budget_usd``, the app's ``BATON_BUDGET_USD_PER_DAY``),
asks ``reached`` here, and words the step's error and the outcome headline
with ``Exceeded.reason``, so the dashboard, the CLI and the events say the
same thing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from .errors import BudgetError

#: What happens to steps not yet started once a cap is reached.
BudgetAction = Literal["cancel", "pause"]
ACTIONS: tuple[BudgetAction, ...] = ("cancel", "pause")
#: Seconds in a UTC day: the daily cap counts spend since the last UTC midnight.
DAY = 86400.0
#: The start of every budget reason: what the outcome headline and the dashboard look for.
EXCEEDED = "budget exceeded"
#: The start of the error a held step shows while it waits for a raised cap.
HELD = "held:"


def check_budget(value: Any, name: str = "budget_usd") -> float:
    """``value`` as a cap in US dollars; ``BudgetError`` naming ``name`` unless a positive, finite number.

    A bool is refused (``True`` is not one dollar), and so is a string: a
    cap is money, typed as a number where it is written.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise BudgetError(f"{name} must be a positive number of US dollars, got {value!r}")
    return float(value)


def check_action(value: Any, name: str = "on_budget") -> BudgetAction:
    """``value`` as a budget action; ``BudgetError`` naming ``name`` unless ``"cancel"`` or ``"pause"``."""
    if value not in ACTIONS:
        raise BudgetError(f'{name} must be "cancel" or "pause", got {value!r}')
    return value  # type: ignore[no-any-return]


def day_start(now: float) -> float:
    """The last UTC midnight at or before ``now`` (epoch seconds): where today's spend begins."""
    return now - now % DAY


def dollars(amount: float) -> str:
    """``$0.42``; an amount under a cent keeps two significant digits (``$0.0031``), so a small cap is readable."""
    if 0 < abs(amount) < 0.01:
        return f"${amount:.{1 - math.floor(math.log10(abs(amount)))}f}"
    return f"${amount:,.2f}"


def used(spent: float | None, cap: float, label: str = "budget") -> str:
    """``budget: $0.42 of $2.50 (17%)``: what ``flask baton status`` and the dashboard show of a cap."""
    amount = spent or 0.0
    return f"{label}: {dollars(amount)} of {dollars(cap)} ({amount / cap:.0%})"


def share(spent: float | None, cap: float) -> float:
    """The part of ``cap`` spent, from 0 to 1 (a bar's fill; spend past the cap fills it)."""
    return min((spent or 0.0) / cap, 1.0)


@dataclass(frozen=True)
class Exceeded:
    """A cap reached: what was ``spent`` against which ``cap``, ``daily`` or the workflow's own."""

    spent: float
    cap: float
    daily: bool = False

    @property
    def reason(self) -> str:
        """``budget exceeded ($0.42 of $0.40)``: a cancelled step's error, and the headline's words."""
        scope = " today" if self.daily else ""
        daily = "daily " if self.daily else ""
        return f"{daily}{EXCEEDED} ({dollars(self.spent)} of {dollars(self.cap)}{scope})"

    @property
    def held(self) -> str:
        """The error a held step shows: why it waits, and what frees it."""
        return f"{HELD} {self.reason}; raise the cap to release it"


def reached(spent: float | None, cap: float | None, *, daily: bool = False) -> Exceeded | None:
    """``Exceeded`` when ``spent`` has reached ``cap``; None with no cap or no priced spend."""
    if cap is None or spent is None or spent < cap:
        return None
    return Exceeded(spent, cap, daily)
