"""What the dashboard reads from this process's metrics: time to first token percentiles,
fallback and 429 rates, circuit states, cache hit rate and saved cost.

These are since the process started and for this replica only; the ledger has the history.
"""

from __future__ import annotations

from typing import Any

from lockgate.features.cache.response_cache import ResponseCache
from lockgate.features.metrics import Histogram, Metrics


def histogram_percentile(hist: Histogram, q: float) -> float | None:
    """The upper bound of the bucket holding the ``q`` (0-100) percentile, in seconds, as
    Prometheus' histogram_quantile would bound it; None when empty or past the last bound."""
    total = sum(hist.counts)
    if total == 0:
        return None
    wanted = total * q / 100
    running = 0
    for bound, count in zip(hist.bounds, hist.counts, strict=False):
        running += count
        if running >= wanted:
            return bound
    return None  # in the +Inf bucket


def _ttft(metrics: Metrics) -> list[dict[str, Any]]:
    out = []
    for (model, deployment), hist in sorted(metrics.ttft_seconds.items()):
        count = sum(hist.counts)
        out.append(
            {
                "model": model,
                "deployment": deployment,
                "count": count,
                "mean_ms": round(hist.total / count * 1000, 1) if count else None,
                **{
                    f"p{q}_ms": None if (s := histogram_percentile(hist, q)) is None else s * 1000
                    for q in (50, 95, 99)
                },
            }
        )
    return out


def _per_model(metrics: Metrics) -> list[dict[str, Any]]:
    requests: dict[str, int] = {}
    limited: dict[str, int] = {}
    for (_, model, outcome), count in metrics.requests.items():
        if not model:
            continue  # requests that failed before naming a model
        requests[model] = requests.get(model, 0) + count
        if outcome == "rate_limited":
            limited[model] = limited.get(model, 0) + count
    fallbacks: dict[str, int] = {}
    for (origin, _), count in metrics.fallbacks.items():
        fallbacks[origin] = fallbacks.get(origin, 0) + count
    out = []
    for model in sorted(requests.keys() | fallbacks.keys()):
        total = requests.get(model, 0)
        out.append(
            {
                "model": model,
                "requests": total,
                "fallbacks": fallbacks.get(model, 0),
                "fallback_rate": fallbacks.get(model, 0) / total if total else None,
                "rate_limited": limited.get(model, 0),
                "rate_limited_rate": limited.get(model, 0) / total if total else None,
                "coalesced": metrics.coalesced.get(model, 0),
            }
        )
    return out


def snapshot(
    metrics: Metrics, cache: ResponseCache | None, deployments: list[tuple[str, str]]
) -> dict[str, Any]:
    """The in-process view, JSON-ready; ``deployments``: (model group, deployment id) pairs
    from config. Labels come from config, never from clients."""
    cache_view: dict[str, Any] | None = None
    if cache is not None:
        models = cache.metrics.summary()
        hits = sum(r.get("hit", 0) + r.get("semantic_hit", 0) for r in models.values())
        looked = hits + sum(r.get("miss", 0) for r in models.values())
        cache_view = {
            "hit_rate": hits / looked if looked else None,
            "hits": hits,
            "lookups": looked,
            "saved_usd": sum(r.get("saved_usd", 0.0) for r in models.values()),
            "models": models,
        }
    return {
        "in_flight": metrics.in_flight,
        "ttft": _ttft(metrics),
        "models": _per_model(metrics),
        "circuits": [
            {"model": m, "deployment": d, "state": metrics.circuit_state.get(d, "closed")}
            for m, d in deployments
        ],
        "cache": cache_view,
    }
