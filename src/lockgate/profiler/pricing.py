"""What each profiled answer cost: lockgate's `x-lockgate-cost` header when it sent one,
else the answer's usage at configured or catalogue (genai-prices) prices."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from lockgate.config.schema import Prices
from lockgate.core.types import Usage
from lockgate.features.pricing import PriceBook, nanos
from lockgate.profiler.load import Sample
from lockgate.profiler.options import BenchOptions

_BENCH = "bench"  # the one pseudo-deployment the profiler prices direct answers as
# (deployment id, provider, upstream model) of a deployment the gateway names, when known
Resolver = Callable[[str], tuple[str, str, str] | None]


class SamplePricer:
    """Prices samples; blocking on its first catalogue look-up, so run it in a thread."""

    def __init__(
        self, options: BenchOptions, book: PriceBook | None = None, resolve: Resolver | None = None
    ) -> None:
        self._options = options
        overrides = {}
        if options.price_input is not None and options.price_output is not None:
            overrides[_BENCH] = Prices(input=options.price_input, output=options.price_output)
        self._own = PriceBook(overrides)
        self._configured = overrides != {}
        self._book = book
        self._resolve = resolve
        self.sources: set[str] = set()

    def __call__(self, sample: Sample) -> int | None:
        if not sample.ok:
            return None
        header = sample.headers.get("x-lockgate-cost")
        if header is not None:
            try:
                from_header = nanos(Decimal(header))
            except InvalidOperation:
                pass
            else:
                self.sources.add("x-lockgate-cost header")
                return from_header
        if sample.prompt_tokens is None and sample.completion_tokens is None:
            return None
        usage = Usage(
            prompt_tokens=sample.prompt_tokens or 0, completion_tokens=sample.completion_tokens or 0
        )
        deployment = sample.headers.get("x-lockgate-deployment")
        if not self._configured and self._book and self._resolve and deployment:
            found = self._resolve(deployment)
            if found is not None:
                self.sources.add("usage at the gateway config's prices")
                return self._book.quote(*found, usage).nanos
        provider = sample.headers.get("x-lockgate-provider", self._options.provider)
        model = sample.model or self._options.model
        cost = self._own.quote(_BENCH, provider, model, usage)
        if not cost.priced:
            self.sources.add("unpriced")
            return None
        self.sources.add(
            "usage at --price-input/--price-output"
            if self._configured
            else "usage at genai-prices catalogue prices"
        )
        return cost.nanos

    def source(self) -> str:
        return ", ".join(sorted(self.sources)) or "none"
