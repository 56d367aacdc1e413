"""Prometheus series of the rate-limit and budget engines (labels: scope kind, never ids)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


class LimitMetrics:
    """Counters bumped by the engines; rendered by the gateway's registry at scrape time.

    Label values are bounded: scope kinds (key, user, team), limit names (rpm, tpm, rpd,
    tpd), alert thresholds from configuration and the engine names; never a key, user or
    team id."""

    def __init__(self) -> None:
        self.rate_limited: dict[tuple[str, str], int] = {}  # scope, limit name
        self.budget_refused: dict[str, int] = {}  # scope
        self.budget_alerts: dict[tuple[str, str], int] = {}  # scope, threshold
        self.fallbacks: dict[str, int] = {}  # engine -> switches to in-process state
        self.local_mode: dict[str, bool] = {}  # engine -> on in-process state now
        self.holdings: dict[str, Callable[[], int]] = {}  # engine -> credits or leases held

    def limited(self, scope: str, limit: str) -> None:
        key = (scope, limit)
        self.rate_limited[key] = self.rate_limited.get(key, 0) + 1

    def refused(self, scope: str) -> None:
        self.budget_refused[scope] = self.budget_refused.get(scope, 0) + 1

    def alert(self, scope: str, threshold: float) -> None:
        key = (scope, f"{threshold:g}")
        self.budget_alerts[key] = self.budget_alerts.get(key, 0) + 1

    def fell_back(self, engine: str) -> None:
        self.fallbacks[engine] = self.fallbacks.get(engine, 0) + 1
        self.local_mode[engine] = True

    def recovered(self, engine: str) -> None:
        self.local_mode[engine] = False

    def collect(self) -> Iterator[Metric]:
        limited = CounterMetricFamily(
            "lockgate_rate_limited", "Requests refused by a gateway rate limit.",
            labels=["scope", "limit"],
        )  # fmt: skip
        for labels, count in self.rate_limited.items():
            limited.add_metric(list(labels), count)
        yield limited
        refused = CounterMetricFamily(
            "lockgate_budget_refused", "Requests refused because a hard budget had no room.",
            labels=["scope"],
        )  # fmt: skip
        for scope, count in self.budget_refused.items():
            refused.add_metric([scope], count)
        yield refused
        alerts = CounterMetricFamily(
            "lockgate_budget_alerts",
            "Soft budget alerts: a scope's spend crossed a threshold (once per period).",
            labels=["scope", "threshold"],
        )
        for labels, count in self.budget_alerts.items():
            alerts.add_metric(list(labels), count)
        yield alerts
        fallbacks = CounterMetricFamily(
            "lockgate_limits_redis_fallbacks",
            "Times an engine lost Redis and switched to per-replica in-process state.",
            labels=["engine"],
        )
        for engine, count in self.fallbacks.items():
            fallbacks.add_metric([engine], count)
        yield fallbacks
        local = GaugeMetricFamily(
            "lockgate_limits_local_mode",
            "1 while an engine enforces per replica because Redis is unreachable.",
            labels=["engine"],
        )
        for engine, on in self.local_mode.items():
            local.add_metric([engine], 1 if on else 0)
        yield local
        holdings = GaugeMetricFamily(
            "lockgate_limits_shared_holdings",
            "Rate-limit credits and budget leases this replica holds in Redis (requests "
            "admitted from them do not wait for Redis; docs/limits.md).",
            labels=["engine"],
        )
        for engine, held in self.holdings.items():
            holdings.add_metric([engine], held())
        yield holdings
