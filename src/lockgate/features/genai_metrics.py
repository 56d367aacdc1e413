"""Series named after the OpenTelemetry GenAI semantic conventions, plus lockgate's own
per-request counters (retries, hedges, cost, queue wait).

OTel names map to Prometheus the usual way: dots become underscores and the unit a suffix
(`gen_ai.client.operation.duration` in seconds -> `gen_ai_client_operation_duration_seconds`;
`gen_ai.client.token.usage`, in tokens -> `gen_ai_client_token_usage`). Attributes become
labels the same way (`gen_ai.operation.name` -> `gen_ai_operation_name`). Every label value
comes from config or a closed set (model group, deployment, provider, error kind), never
from a client: no key, user or free-form model name, so the series count stays bounded.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from lockgate.core.types import RequestContext, Usage

# The conventions' advised bucket boundaries.
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1, 4, 16 ... 67108864
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# operation, provider, request model (the model group), deployment
Attrs = tuple[str, str, str, str]
ATTRS = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "deployment"]


class _Hist:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


class _Series(dict[tuple[str, ...], _Hist]):
    def __init__(self, bounds: tuple[float, ...]) -> None:
        super().__init__()
        self.bounds = bounds

    def __missing__(self, key: tuple[str, ...]) -> _Hist:
        hist = self[key] = _Hist(self.bounds)
        return hist


class GenAIMetrics:
    """Collected by the gateway's registry; fed from the pipeline and the edge."""

    def __init__(self) -> None:
        self.duration = _Series(DURATION_BUCKETS)  # Attrs + error_type ("" on success)
        self.ttft = _Series(TTFT_BUCKETS)  # Attrs
        self.tokens = _Series(TOKEN_BUCKETS)  # Attrs + token type (input / output)
        self.queue_wait = _Series(QUEUE_BUCKETS)  # model group
        self.cost_nanos: dict[tuple[str, str], int] = {}  # model group, deployment
        self.retries: dict[str, int] = {}  # model group
        self.hedges: dict[str, int] = {}  # model group
        self.served: dict[tuple[str, str, str], int] = {}  # model group, status, cache status

    def operation(self, attrs: Attrs, error_type: str, seconds: float) -> None:
        self.duration[(*attrs, error_type)].observe(seconds)

    def first_token(self, attrs: Attrs, seconds: float) -> None:
        self.ttft[attrs].observe(seconds)

    def usage(self, attrs: Attrs, usage: Usage) -> None:
        self.tokens[(*attrs, "input")].observe(usage.prompt_tokens)
        self.tokens[(*attrs, "output")].observe(usage.completion_tokens)

    def request(self, ctx: RequestContext) -> None:
        """A client request is over: what it took, from its context."""
        group = ctx.model_group
        if not group:  # refused before routing (authentication, bad request)
            return
        key = (group, ctx.outcome, ctx.cache or "none")
        self.served[key] = self.served.get(key, 0) + 1
        if ctx.retries:
            self.retries[group] = self.retries.get(group, 0) + ctx.retries
        if ctx.hedged:
            self.hedges[group] = self.hedges.get(group, 0) + 1
        if ctx.queued:
            self.queue_wait[(group,)].observe(ctx.queued)
        if ctx.cost and not ctx.coalesced:
            cost_key = (group, ctx.deployment)
            self.cost_nanos[cost_key] = self.cost_nanos.get(cost_key, 0) + ctx.cost

    def collect(self) -> Iterator[Metric]:
        yield _family(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration: each upstream call (gen_ai.client.operation.duration).",
            [*ATTRS, "error_type"], self.duration,
        )  # fmt: skip
        yield _family(
            "gen_ai_server_time_to_first_token_seconds",
            "Time to a stream's first chunk (gen_ai.server.time_to_first_token).",
            ATTRS, self.ttft,
        )  # fmt: skip
        yield _family(
            "gen_ai_client_token_usage",
            "Tokens used per upstream answer, input or output (gen_ai.client.token.usage).",
            [*ATTRS, "gen_ai_token_type"], self.tokens,
        )  # fmt: skip
        yield _family(
            "lockgate_queue_wait_seconds", "Time requests waited in a deployment's admission "
            "queue.", ["model"], self.queue_wait,
        )  # fmt: skip
        cost = CounterMetricFamily(
            "lockgate_cost_usd", "What answers cost, in USD, at the deployment's prices.",
            labels=["model", "deployment"],
        )  # fmt: skip
        for (group, deployment), nanos in self.cost_nanos.items():
            cost.add_metric([group, deployment], nanos / 1e9)
        yield cost
        yield _counter("lockgate_retries", "Retries of upstream calls.", self.retries)
        yield _counter("lockgate_hedged_requests", "Requests that raced a hedge.", self.hedges)
        served = CounterMetricFamily(
            "lockgate_served_requests",
            "Routed client requests by status (ok or an error kind) and response-cache status.",
            labels=["model", "status", "cache"],
        )
        for labels, count in self.served.items():
            served.add_metric(list(labels), count)
        yield served

    def describe(self) -> list[Metric]:
        return []


def _counter(name: str, doc: str, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=["model"])
    for model, count in counts.items():
        family.add_metric([model], count)
    return family


def _family(
    name: str, doc: str, labels: list[str], series: dict[tuple[str, ...], _Hist]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, hist in series.items():
        family.add_metric(list(values), hist.buckets(), sum_value=hist.total)
    return family
