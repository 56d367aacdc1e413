"""Prices: the cost of an upstream answer, in integer nano-dollars (USD * 10**9).

Figures come from genai-prices' bundled data (it never goes to the network here: lockgate
does not call its updater), or from a deployment's `prices` in config, which replace them
for that deployment (self-hosted or custom models). Usage follows OpenAI: cached and
cache-creation tokens are part of prompt tokens, reasoning tokens part of completion
tokens; each kind is priced at its own rate and no token is counted twice. A model without
a known price costs 0 and is counted as unpriced (a metric, and one log line per model).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import genai_prices
from genai_prices import types as gp
from genai_prices.data_snapshot import get_snapshot
from prometheus_client.core import CounterMetricFamily, Metric

from lockgate.config.schema import Prices
from lockgate.core.accounting import NANOS_PER_USD, Cost
from lockgate.core.types import Usage

log = logging.getLogger(__name__)

_NANOS_PER_TOKEN_AT_1_USD_PER_MTOK = Decimal(NANOS_PER_USD) / Decimal(10**6)
_MAX_CACHED_MODELS = 4096  # wildcard groups take model names from clients: keep it bounded
_Found = tuple[gp.Provider, gp.ModelInfo, "Rates | None"] | None
# Price keys the fast path understands; others of these families never apply to our usage.
_FAST_KEYS = {
    "input_mtok": "input",
    "cache_read_mtok": "cached_input",
    "cache_write_mtok": "cache_write",
    "output_mtok": "output",
    "output_reasoning_mtok": "reasoning",
}
_INAPPLICABLE_FAMILIES = frozenset(
    {"characters", "messages", "durations", "pixels", "document_pages", "rerank", "tool_calls"}
)


def nanos(usd: Decimal) -> int:
    """USD as integer nano-dollars, rounded half to even (once, per answer)."""
    return int((usd * NANOS_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def split(usage: Usage) -> tuple[int, int, int, int, int]:
    """Disjoint token counts: (uncached input, cache reads, cache writes, non-reasoning
    output, reasoning). A provider reporting a subset larger than its total is clamped."""
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    written = min(usage.cache_creation_tokens, usage.prompt_tokens - cached)
    reasoning = min(usage.reasoning_tokens, usage.completion_tokens)
    return (
        usage.prompt_tokens - cached - written,
        cached,
        written,
        usage.completion_tokens - reasoning,
        reasoning,
    )


class Rates:
    """Nano-dollars per token of each kind (uncached input, cache read, cache write,
    output, reasoning), exact; plain ints when every rate is whole, as most are."""

    __slots__ = ("_decimal", "_whole")

    def __init__(self, prices: Prices) -> None:
        usd = (
            prices.input,
            prices.cached_input if prices.cached_input is not None else prices.input,
            prices.cache_write if prices.cache_write is not None else prices.input,
            prices.output,
            prices.reasoning if prices.reasoning is not None else prices.output,
        )
        self._decimal = tuple(Decimal(p) * _NANOS_PER_TOKEN_AT_1_USD_PER_MTOK for p in usd)
        whole = all(rate == rate.to_integral_value() for rate in self._decimal)
        self._whole = tuple(int(rate) for rate in self._decimal) if whole else None

    def flat(self) -> tuple[int, int] | None:
        """(input, output) nano-dollars per token, when both are whole."""
        whole = self._whole
        return (whole[0], whole[3]) if whole is not None else None

    def cost(self, usage: Usage) -> Cost:
        whole = self._whole
        if whole is not None and not (
            usage.cached_tokens or usage.cache_creation_tokens or usage.reasoning_tokens
        ):  # the usual answer: plain input and output tokens
            return Cost(usage.prompt_tokens * whole[0] + usage.completion_tokens * whole[3])
        counts = split(usage)
        if whole is not None:
            return Cost(sum(n * r for n, r in zip(counts, whole, strict=True)))
        exact = sum((n * r for n, r in zip(counts, self._decimal, strict=True)), Decimal(0))
        return Cost(int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)))


def override_cost(prices: Prices, usage: Usage) -> Cost:
    """The cost at configured prices (USD per million tokens of each kind)."""
    return Rates(prices).cost(usage)


def catalogue_usage(usage: Usage) -> genai_prices.Usage:
    """Our usage in genai-prices' terms: its input_tokens include cache reads and writes,
    its output_tokens include reasoning, as ours do."""
    fresh, cached, written, output, reasoning = split(usage)
    return genai_prices.Usage(
        input_tokens=fresh + cached + written,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        output_tokens=output + reasoning,
        output_reasoning_tokens=reasoning,
    )


def flat_prices(model: gp.ModelInfo) -> Prices | None:
    """The model's prices as plain per-kind rates, when that is all they are: one price
    set (not dated or time-of-day), no tiers, no per-request fee (variants such as a
    service tier apply only when asked for, and lockgate does not ask). Pricing
    then costs a few Decimal multiplications instead of genai-prices' general path
    (about 100 us an answer); None sends the model down that general path."""
    from genai_prices.units import _get_registry

    if not isinstance(model.prices, gp.ModelPrice):
        return None
    registry = _get_registry()
    rates: dict[str, Decimal] = {}
    for key, value in model.prices.__dict__.items():
        if value is None or key.startswith("_"):
            continue
        if key in _FAST_KEYS and isinstance(value, Decimal):
            rates[_FAST_KEYS[key]] = value
            continue
        try:
            family = registry.unit_for_price_key(key).dimensions.get("family")
        except KeyError:
            return None
        if family not in _INAPPLICABLE_FAMILIES:
            return None
    if "input" not in rates or "output" not in rates:
        return None
    return Prices.model_validate(rates)


class PriceBook:
    """Prices every upstream answer: a deployment's configured prices, else genai-prices'."""

    def __init__(self, overrides: Mapping[str, Prices] | None = None) -> None:
        # deployment id -> its configured prices
        self._overrides = {dep: Rates(prices) for dep, prices in (overrides or {}).items()}
        self._found: dict[tuple[str, str], _Found] = {}
        self.unpriced: dict[tuple[str, str], int] = {}  # (deployment, model) -> answers
        self.spent: dict[str, int] = {}  # deployment -> nano-dollars, for /metrics

    def warm(self, deployments: Iterator[tuple[str, str, str]]) -> None:
        """Look (deployment, provider, model) up ahead of traffic: the first look-up builds
        genai-prices' indexes, which takes a while."""
        for deployment, provider, model in deployments:
            if deployment not in self._overrides and "*" not in model:
                self._lookup(provider, model)

    def cost(self, deployment: str, provider: str, model: str, usage: Usage) -> Cost:
        cost = self._cost(deployment, provider, model, usage)
        if cost.nanos:
            self.spent[deployment] = self.spent.get(deployment, 0) + cost.nanos
        return cost

    def quote(self, deployment: str, provider: str, model: str, usage: Usage) -> Cost:
        """What ``usage`` costs, without counting it as spent (e.g. what a cache hit saved)."""
        return self._cost(deployment, provider, model, usage)

    def flat_rates(self, deployment: str, provider: str, model: str) -> tuple[int, int] | None:
        rates = self._overrides.get(deployment)
        if rates is None:
            found = self._lookup(provider, model)
            rates = found[2] if found is not None else None
        return rates.flat() if rates is not None else None

    def _cost(self, deployment: str, provider: str, model: str, usage: Usage) -> Cost:
        rates = self._overrides.get(deployment)
        if rates is not None:
            return rates.cost(usage)
        found = self._lookup(provider, model)
        if found is not None:
            if found[2] is not None:
                return found[2].cost(usage)
            try:
                calc = found[1].calc_price(catalogue_usage(usage), found[0])
                return Cost(nanos(calc.total_price))
            except (ValueError, ArithmeticError) as exc:
                log.warning("cannot price %s on %s: %s", model, deployment, exc)
        self._unpriced(deployment, model)
        return Cost(0, priced=False)

    def _lookup(self, provider: str, model: str) -> _Found:
        key = (provider, model)
        if key in self._found:
            return self._found[key]
        try:
            hit = get_snapshot().find_provider_model(model, None, provider, None)
        except LookupError:
            found: _Found = None  # a self-hosted provider, or a model the catalogue lacks
        else:
            flat = flat_prices(hit[1])
            found = (hit[0], hit[1], Rates(flat) if flat is not None else None)
        if len(self._found) < _MAX_CACHED_MODELS:
            self._found[key] = found
        return found

    def _unpriced(self, deployment: str, model: str) -> None:
        key = (deployment, model)
        seen = self.unpriced.get(key, 0)
        if not seen:
            log.warning(
                "no price known for model %r on deployment %r: counted as 0; set `prices` on "
                "the deployment to bill it",
                model,
                deployment,
            )
        self.unpriced[key] = seen + 1

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "lockgate_unpriced_answers",
            "Upstream answers counted as 0 because no price is known for the model.",
            labels=["deployment", "model"],
        )
        for (deployment, model), count in self.unpriced.items():
            family.add_metric([deployment, model], count)
        yield family
        spend = CounterMetricFamily(
            "lockgate_spend_usd",
            "What upstream answers cost, by deployment (the ledger has the exact integers).",
            labels=["deployment"],
        )
        for deployment, spent in self.spent.items():
            spend.add_metric([deployment], spent / NANOS_PER_USD)
        yield spend

    def describe(self) -> list[Any]:
        return []
