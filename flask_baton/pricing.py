"""What a model call costs: US dollars from token counts.

Prices are US dollars per million tokens, per model: ``input`` (uncached
prompt tokens), ``cached_input`` (prompt tokens served from the provider's
cache; defaults to ``input``) and ``output``. ``BATON_PRICING`` replaces the
table (a mapping of the same shape) or computes costs itself (a callable
``(model, input_tokens, output_tokens, cached_input_tokens) -> float | None``).
Pure functions: no Flask, no SQL.
"""

from __future__ import annotations

import logging
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
    "claude-opus-4": {"input": 15.00, "cached_input": 1.50, "output": 75.00},
    "claude-sonnet-4": {"input": 3.00, "cached_input": 0.30, "output": 15.00},
    "claude-3-5-haiku": {"input": 0.80, "cached_input": 0.08, "output": 4.00},
    "gemini-1.5-pro": {"input": 1.25, "cached_input": 0.3125, "output": 5.00},
    "gemini-1.5-flash": {"input": 0.075, "cached_input": 0.01875, "output": 0.30},
}

_PRICE_KEYS = {"input", "output", "cached_input"}


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
                f"{key}[{model!r}] must be a mapping with 'input' and 'output' (and optionally "
                f"'cached_input') prices in USD per million tokens, got {prices!r}"
            )
        for name, price in prices.items():
            if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
                raise ConfigError(f"{key}[{model!r}][{name!r}] must be a number >= 0, got {price!r}")
    return value


_warned: set[str] = set()


def cost_usd(
    pricing: PriceTable | CostFunction, model: str, input_tokens: int, output_tokens: int, cached_input_tokens: int
) -> float | None:
    """The cost of one call, or ``None`` (with one warning per model) when unpriced."""
    if callable(pricing):
        return pricing(model, input_tokens, output_tokens, cached_input_tokens)
    prices = pricing.get(model)
    if prices is None:
        if model not in _warned:
            _warned.add(model)
            logger.warning("no price for model %r in BATON_PRICING: its usage is recorded without a cost", model)
        return None
    cached_price = prices.get("cached_input", prices["input"])
    return (
        input_tokens * prices["input"] + cached_input_tokens * cached_price + output_tokens * prices["output"]
    ) / 1_000_000
