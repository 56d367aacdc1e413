"""Prometheus metrics: one registry per app, recorded by the edge and the pipeline."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from lockgate.core.types import Usage

_LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
)  # fmt: skip
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0)


class Metrics:
    """Labels are bounded: model groups and deployments come from config, never from clients."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "lockgate_requests", "Requests served, by outcome (ok or an error kind).",
            ["endpoint", "model", "outcome"], registry=r,
        )  # fmt: skip
        self.request_seconds = Histogram(
            "lockgate_request_duration_seconds", "Whole-request latency as the client saw it.",
            ["endpoint", "model"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.upstream_seconds = Histogram(
            "lockgate_upstream_duration_seconds", "Latency of each upstream call.",
            ["model", "deployment", "outcome"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.ttft_seconds = Histogram(
            "lockgate_time_to_first_token_seconds", "Time to the first streamed chunk.",
            ["model", "deployment"], buckets=_TTFT_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "lockgate_tokens", "Tokens reported by providers, by type.",
            ["model", "deployment", "type"], registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "lockgate_errors", "Errors returned to clients, by kind.",
            ["endpoint", "model", "kind"], registry=r,
        )  # fmt: skip
        self.in_flight = Gauge(
            "lockgate_in_flight_requests", "Requests being served now.", registry=r
        )

    def request_done(self, endpoint: str, model: str, outcome: str, seconds: float) -> None:
        self.requests.labels(endpoint, model, outcome).inc()
        self.request_seconds.labels(endpoint, model).observe(seconds)
        if outcome != "ok":
            self.errors.labels(endpoint, model, outcome).inc()

    def upstream_done(self, model: str, deployment: str, outcome: str, seconds: float) -> None:
        self.upstream_seconds.labels(model, deployment, outcome).observe(seconds)

    def first_token(self, model: str, deployment: str, seconds: float) -> None:
        self.ttft_seconds.labels(model, deployment).observe(seconds)

    def usage(self, model: str, deployment: str, usage: Usage) -> None:
        for kind, count in (
            ("prompt", usage.prompt_tokens),
            ("completion", usage.completion_tokens),
            ("cached", usage.cached_tokens),
            ("reasoning", usage.reasoning_tokens),
        ):
            if count:
                self.tokens.labels(model, deployment, kind).inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
