"""Prometheus metrics, aggregated in process on the hot path and rendered at scrape time.

The event loop is single-threaded, so the hot path only bumps plain ints and lists (no
locks, no label validation); `prometheus_client` renders them when `/metrics` is read.
Labels are bounded: model groups and deployments come from config, never from clients.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from lockgate.core.types import Usage
from lockgate.features.genai_metrics import GenAIMetrics
from lockgate.features.limit_metrics import LimitMetrics

LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
)  # fmt: skip
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0)


class Histogram:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last slot is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


class _Histograms(dict[tuple[str, ...], Histogram]):
    def __init__(self, bounds: tuple[float, ...]) -> None:
        super().__init__()
        self.bounds = bounds

    def __missing__(self, key: tuple[str, ...]) -> Histogram:
        hist = self[key] = Histogram(self.bounds)
        return hist


class Metrics:
    def __init__(self) -> None:
        self.in_flight = 0
        self.requests: dict[tuple[str, str, str], int] = {}  # endpoint, model, outcome
        self.request_seconds = _Histograms(LATENCY_BUCKETS)  # endpoint, model
        self.upstream_seconds = _Histograms(LATENCY_BUCKETS)  # model, deployment, outcome
        self.ttft_seconds = _Histograms(TTFT_BUCKETS)  # model, deployment
        self.tokens: dict[tuple[str, str, str], int] = {}  # model, deployment, type
        self.fallbacks: dict[tuple[str, str], int] = {}  # from model, to model
        self.circuit_transitions: dict[tuple[str, str], int] = {}  # deployment, new state
        self.circuit_state: dict[str, str] = {}  # deployment -> closed/open/half_open
        self.provider_keys: dict[tuple[str, str], int] = {}  # deployment, disabled/rested
        self.coalesced: dict[str, int] = {}  # model -> requests answered by a shared call
        self.limits = LimitMetrics()  # rate limits and budgets
        self.genai = GenAIMetrics()  # OTel GenAI-named series, per-request counters
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self.registry.register(self.limits)
        self.registry.register(self.genai)

    # -- hot path -------------------------------------------------------------------------

    def request_done(self, endpoint: str, model: str, outcome: str, seconds: float) -> None:
        key = (endpoint, model, outcome)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.request_seconds[(endpoint, model)].observe(seconds)

    def upstream_done(
        self,
        model: str,
        deployment: str,
        outcome: str,
        seconds: float,
        provider: str = "",
        operation: str = "chat",
    ) -> None:
        self.upstream_seconds[(model, deployment, outcome)].observe(seconds)
        error = "" if outcome == "ok" else outcome
        self.genai.operation((operation, provider, model, deployment), error, seconds)

    def fallback(self, origin: str, target: str) -> None:
        key = (origin, target)
        self.fallbacks[key] = self.fallbacks.get(key, 0) + 1

    def coalesced_request(self, model: str) -> None:
        self.coalesced[model] = self.coalesced.get(model, 0) + 1

    def provider_key(self, deployment: str, event: str) -> None:
        key = (deployment, event)
        self.provider_keys[key] = self.provider_keys.get(key, 0) + 1

    def circuit(self, deployment: str, state: str) -> None:
        key = (deployment, state)
        self.circuit_transitions[key] = self.circuit_transitions.get(key, 0) + 1
        self.circuit_state[deployment] = state

    def first_token(self, model: str, deployment: str, seconds: float, provider: str = "") -> None:
        self.ttft_seconds[(model, deployment)].observe(seconds)
        self.genai.first_token(("chat", provider, model, deployment), seconds)

    def usage(
        self,
        model: str,
        deployment: str,
        usage: Usage,
        provider: str = "",
        operation: str = "chat",
    ) -> None:
        self.genai.usage((operation, provider, model, deployment), usage)
        tokens = self.tokens
        for kind, count in (
            ("prompt", usage.prompt_tokens),
            ("completion", usage.completion_tokens),
            ("cached", usage.cached_tokens),
            ("reasoning", usage.reasoning_tokens),
        ):
            if count:
                key = (model, deployment, kind)
                tokens[key] = tokens.get(key, 0) + count

    # -- scrape time ----------------------------------------------------------------------

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "lockgate_requests", "Requests served, by outcome (ok or an error kind).",
            labels=["endpoint", "model", "outcome"],
        )  # fmt: skip
        errors = CounterMetricFamily(
            "lockgate_errors", "Requests that ended in an error, by kind.",
            labels=["endpoint", "model", "kind"],
        )  # fmt: skip
        for (endpoint, model, outcome), count in self.requests.items():
            requests.add_metric([endpoint, model, outcome], count)
            if outcome != "ok":
                errors.add_metric([endpoint, model, outcome], count)
        yield requests
        yield errors
        yield _histogram(
            "lockgate_request_duration_seconds", "Whole-request latency as the client saw it.",
            ["endpoint", "model"], self.request_seconds,
        )  # fmt: skip
        yield _histogram(
            "lockgate_upstream_duration_seconds", "Latency of each upstream call.",
            ["model", "deployment", "outcome"], self.upstream_seconds,
        )  # fmt: skip
        yield _histogram(
            "lockgate_time_to_first_token_seconds", "Time to the first streamed chunk.",
            ["model", "deployment"], self.ttft_seconds,
        )  # fmt: skip
        yield counter(
            "lockgate_tokens", "Tokens reported by providers, by type.",
            ["model", "deployment", "type"], self.tokens,
        )  # fmt: skip
        yield counter(
            "lockgate_fallbacks", "Requests moved to a fallback model group.",
            ["model", "fallback"], self.fallbacks,
        )  # fmt: skip
        yield counter(
            "lockgate_coalesced_requests",
            "Requests answered by another identical request's upstream call.",
            ["model"], self.coalesced,
        )  # fmt: skip
        key_events = CounterMetricFamily(
            "lockgate_provider_key_events",
            "Provider keys taken out of rotation (disabled) or rested after a 429.",
            labels=["deployment", "event"],
        )
        for (deployment, event), count in self.provider_keys.items():
            key_events.add_metric([deployment, event], count)
        yield key_events
        transitions = CounterMetricFamily(
            "lockgate_circuit_transitions", "Deployment circuit-breaker state changes.",
            labels=["deployment", "state"],
        )  # fmt: skip
        for (deployment, state), count in self.circuit_transitions.items():
            transitions.add_metric([deployment, state], count)
        yield transitions
        states = GaugeMetricFamily(
            "lockgate_circuit_open", "1 while a deployment is out of rotation (open or half-open).",
            labels=["deployment"],
        )  # fmt: skip
        for deployment, state in self.circuit_state.items():
            states.add_metric([deployment], 0 if state == "closed" else 1)
        yield states
        yield GaugeMetricFamily(
            "lockgate_in_flight_requests", "Requests being served now.", value=self.in_flight
        )


def counter(
    name: str, doc: str, labels: list[str], counts: Mapping[Any, float]
) -> CounterMetricFamily:
    """A counter family from counts keyed by a label value or a tuple of label values."""
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in counts.items():
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def _histogram(
    name: str, doc: str, labels: list[str], series: dict[tuple[str, ...], Histogram]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, hist in series.items():
        family.add_metric(list(values), hist.cumulative(), sum_value=hist.total)
    return family
