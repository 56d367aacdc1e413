"""Aggregates samples into the report: percentiles, rates, limits, tokens, cost."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lockgate.core.accounting import NANOS_PER_USD
from lockgate.profiler.load import Sample
from lockgate.profiler.options import BenchOptions

PERCENTILES = (50, 90, 95, 99)
SECONDS_PER_DAY = 86_400
DAYS_PER_MONTH = 30


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks of sorted ``values`` (like numpy's)."""
    if not values:
        return math.nan
    rank = (len(values) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def distribution_ms(seconds: list[float]) -> dict[str, float] | None:
    if not seconds:
        return None
    values = sorted(seconds)
    out = {f"p{p}": round(percentile(values, p) * 1000, 2) for p in PERCENTILES}
    out["mean"] = round(sum(values) / len(values) * 1000, 2)
    out["max"] = round(values[-1] * 1000, 2)
    return out


@dataclass
class Collector:
    """Every finished request, plus the running counts the progress line shows."""

    samples: list[Sample] = field(default_factory=list)
    ok: int = 0
    rate_limited: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)

    def __call__(self, sample: Sample) -> None:
        self.samples.append(sample)
        if sample.ok:
            self.ok += 1
        elif sample.status == 429:
            self.rate_limited += 1
        else:
            self.failed += 1

    def recent_p50_ms(self, last: int = 200) -> float | None:
        recent = sorted(s.latency for s in self.samples[-last:] if s.ok)
        return percentile(recent, 50) * 1000 if recent else None


def advertised_limits(samples: list[Sample]) -> dict[str, int | None]:
    """The last advertised ``x-ratelimit-limit-*`` and the least ``remaining`` seen."""
    out: dict[str, int | None] = {
        "requests_per_minute": None,
        "tokens_per_minute": None,
        "min_remaining_requests": None,
        "min_remaining_tokens": None,
    }
    for sample in samples:
        for kind, key in (("requests", "requests_per_minute"), ("tokens", "tokens_per_minute")):
            limit = _int(sample.headers.get(f"x-ratelimit-limit-{kind}"))
            if limit is not None:
                out[key] = limit
            remaining = _int(sample.headers.get(f"x-ratelimit-remaining-{kind}"))
            least = f"min_remaining_{kind}"
            if remaining is not None and (out[least] is None or remaining < (out[least] or 0)):
                out[least] = remaining
    return out


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def summarize(
    options: BenchOptions,
    samples: list[Sample],
    costs: list[int | None],
    elapsed: float,
    *,
    limits: dict[str, Any],
    cost_source: str,
) -> dict[str, Any]:
    """The report as plain data (what ``--json`` prints). ``costs`` are nano-dollars per
    sample (None: not known); ``elapsed`` runs from the start to the last answer."""
    answered = [s for s in samples if s.ok]
    statuses = Counter(str(s.status) if s.status else (s.error or "error") for s in samples)
    failed = [s for s in samples if not s.ok]
    n = len(samples)
    load_rps = options.rps if options.rps is not None else len(answered) / max(elapsed, 1e-9)
    prompt = [s.prompt_tokens for s in answered if s.prompt_tokens is not None]
    completion = [s.completion_tokens for s in answered if s.completion_tokens is not None]
    priced = [c for s, c in zip(samples, costs, strict=True) if s.ok and c is not None]
    per_request = sum(priced) / len(priced) / NANOS_PER_USD if priced else None
    per_day = per_request * load_rps * SECONDS_PER_DAY if per_request is not None else None
    deployments = Counter(
        s.headers["x-lockgate-deployment"] for s in answered if "x-lockgate-deployment" in s.headers
    )
    attempts = [int(s.headers["x-lockgate-attempts"]) for s in answered if _attempts(s)]
    return {
        "target": {
            "mode": "direct" if options.direct else "gateway",
            "url": options.url,
            "model": options.model,
            "stream": options.stream,
            "load": (
                {"rps": options.rps, "arrivals": options.arrivals}
                if options.rps is not None
                else {"concurrency": options.concurrency}
            ),
            "duration_s": options.duration,
            "prompt_tokens": None if options.prompts_file else options.prompt_tokens,
            "prompts_file": options.prompts_file,
            "max_tokens": options.max_tokens,
        },
        "requests": {
            "sent": n,
            "ok": len(answered),
            "failed": len(failed),
            "error_rate": round(len(failed) / n, 4) if n else None,
            "rate_limited": statuses.get("429", 0),
            "rate_limited_rate": round(statuses.get("429", 0) / n, 4) if n else None,
            "by_status": dict(sorted(statuses.items())),
        },
        "throughput": {
            "target_rps": options.rps,
            "sent_rps": round(n / options.duration, 3),
            "ok_rps": round(len(answered) / max(elapsed, 1e-9), 3),
            "elapsed_s": round(elapsed, 3),
        },
        "latency_ms": distribution_ms([s.latency for s in answered]),
        "ttft_ms": distribution_ms([s.ttft for s in answered if s.ttft is not None]),
        "tokens": {
            "prompt_per_request": round(sum(prompt) / len(prompt), 1) if prompt else None,
            "completion_per_request": (
                round(sum(completion) / len(completion), 1) if completion else None
            ),
            "prompt_per_s": round(sum(prompt) / max(elapsed, 1e-9), 1),
            "completion_per_s": round(sum(completion) / max(elapsed, 1e-9), 1),
            "prompt_total": sum(prompt),
            "completion_total": sum(completion),
        },
        "cost": {
            "source": cost_source,
            "total_usd": sum(c for c in costs if c is not None) / NANOS_PER_USD,
            "priced_answers": len(priced),
            "per_request_usd": per_request,
            "load_rps": round(load_rps, 3),
            "per_day_usd": per_day,
            "per_month_usd": per_day * DAYS_PER_MONTH if per_day is not None else None,
        },
        "limits": limits,
        "gateway": {
            "deployments": dict(deployments),
            "fallbacks": sum(1 for s in answered if s.headers.get("x-lockgate-fallback") == "true"),
            "mean_attempts": round(sum(attempts) / len(attempts), 3) if attempts else None,
        }
        if not options.direct
        else None,
    }


def _attempts(sample: Sample) -> bool:
    return sample.headers.get("x-lockgate-attempts", "").isdigit()
