"""What a model call costs: US dollars from token counts.

Prices are US dollars per million tokens, per model: ``input`` (uncached
prompt tokens), ``cached_input`` (prompt tokens served from the provider's
cache; defaults to ``input``), ``cache_write`` (prompt tokens written to it;
defaults to ``input`` x 1.25, what Anthropic charges for its 5-minute cache),
``output`` and ``reasoning`` (hidden reasoning tokens; defaults to ``output``,
as every provider bills them). ``BATON_PRICING`` replaces the table (a
mapping of the same shape) or computes costs itself (a callable
``(model, input_tokens, output_tokens, cached_input_tokens) -> float | None``,
which may also take ``reasoning_tokens`` and ``cache_write_tokens`` keywords).
Pure functions: no Flask, no SQL.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, cast

from .errors import ConfigError

logger = logging.getLogger("flask_baton")

PriceTable = Mapping[str, Mapping[str, float]]
CostFunction = Callable[[str, int, int, int], "float | None"]

#: Shipped list prices (USD per million tokens) of common models, as published
#: by their providers in 2025. Illustrative: check yours, and set BATON_PRICING.
DEFAULT_PRICING: dict[str, dict[str, float]] = {
    "gpt-4o": {"input": 2.50, "cached_input": 1.25, "output": 10.00},
    "gpt-4o-mini": {"input": 0.15, "cached_input": 0.075, "output": 0.60},
    "gpt-4.1": {"input": 2.00, "cached_input": 0.50, "output": 8.00},
    "gpt-4.1-mini": {"input": 0.40, "cached_input": 0.10, "output": 1.60},
    "gpt-4.1-nano": {"input": 0.10, "cached_input": 0.025, "output": 0.40},
    "o3": {"input": 2.00, "cached_input": 0.50, "output": 8.00},
    "o4-mini": {"input": 1.10, "cached_input": 0.275, "output": 4.40},
    "claude-opus-4": {"input": 15.00, "cached_input": 1.50, "cache_write": 18.75, "output": 75.00},
    "claude-sonnet-4": {"input": 3.00, "cached_input": 0.30, "cache_write": 3.75, "output": 15.00},
    "claude-3-5-haiku": {"input": 0.80, "cached_input": 0.08, "cache_write": 1.00, "output": 4.00},
    "gemini-1.5-pro": {"input": 1.25, "cached_input": 0.3125, "output": 5.00},
    "gemini-1.5-flash": {"input": 0.075, "cached_input": 0.01875, "output": 0.30},
    "gemini-2.5-pro": {"input": 1.25, "cached_input": 0.31, "output": 10.00},
    "gemini-2.5-flash": {"input": 0.30, "cached_input": 0.075, "output": 2.50},
}

_PRICE_KEYS = {"input", "output", "cached_input", "cache_write", "reasoning"}
#: What a cache write costs when the table gives no ``cache_write`` price: Anthropic's
#: 5-minute cache writes are billed at 1.25 times the input price (1-hour ones at 2 times).
CACHE_WRITE_FACTOR = 1.25
#: A dated or numbered snapshot at the end of a model's name, as APIs answer with
#: (``gpt-4o-mini-2024-07-18``, ``claude-sonnet-4-20250514``, ``gemini-1.5-flash-002``).
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{3}|latest)$")
#: The keywords a cost callable may take beside its four positional arguments.
_SPLIT_COUNTS = ("reasoning_tokens", "cache_write_tokens")


def check_pricing(key: str, value: Any) -> PriceTable | CostFunction:
    """Validate a ``BATON_PRICING`` value (``None`` means the shipped table)."""
    if value is None:
        return DEFAULT_PRICING
    if callable(value):
        return cast(CostFunction, value)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a mapping of model -> prices, or a callable, got {value!r}")
    for model, prices in value.items():
        if not isinstance(prices, Mapping) or not {"input", "output"} <= set(prices) or set(prices) - _PRICE_KEYS:
            raise ConfigError(
                f"{key}[{model!r}] must be a mapping with 'input' and 'output' (and optionally 'cached_input', "
                f"'cache_write' and 'reasoning') prices in USD per million tokens, got {prices!r}"
            )
        for name, price in prices.items():
            if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
                raise ConfigError(f"{key}[{model!r}][{name!r}] must be a number >= 0, got {price!r}")
    return value


def prices_for(table: PriceTable, model: str) -> Mapping[str, float] | None:
    """``model``'s prices: its own entry, else that of its name without a snapshot suffix."""
    prices = table.get(model)
    if prices is None and (base := _SNAPSHOT.sub("", model)) != model:
        prices = table.get(base)
    return prices


_warned: set[str] = set()


def cost_usd(
    pricing: PriceTable | CostFunction,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int,
    *,
    reasoning_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> float | None:
    """The cost of one call, or ``None`` (with one warning per model) when unpriced."""
    if callable(pricing):
        return _call(
            pricing, model, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cache_write_tokens
        )
    prices = prices_for(pricing, model)
    if prices is None:
        if model not in _warned:
            _warned.add(model)
            logger.warning("no price for model %r in BATON_PRICING: its usage is recorded without a cost", model)
        return None
    input_price, output_price = prices["input"], prices["output"]
    return (
        input_tokens * input_price
        + cached_input_tokens * prices.get("cached_input", input_price)
        + cache_write_tokens * prices.get("cache_write", input_price * CACHE_WRITE_FACTOR)
        + output_tokens * output_price
        + reasoning_tokens * prices.get("reasoning", output_price)
    ) / 1_000_000


def _call(
    function: CostFunction, model: str, inputs: int, outputs: int, cached: int, reasoning: int, cache_writes: int
) -> float | None:
    """Call a cost callable: with the split counts if it takes them, else folded into its four arguments.

    A callable written before reasoning and cache writes were counted apart
    sees them where it saw them then: reasoning in the output, cache writes
    in the (uncached) input.
    """
    if _takes_split_counts(function):
        split: Callable[..., float | None] = function
        return split(model, inputs, outputs, cached, reasoning_tokens=reasoning, cache_write_tokens=cache_writes)
    return function(model, inputs + cache_writes, outputs + reasoning, cached)


def _takes_split_counts(function: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # a callable Python cannot introspect: the four arguments only
        return False
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return True
    return all(name in parameters for name in _SPLIT_COUNTS)
