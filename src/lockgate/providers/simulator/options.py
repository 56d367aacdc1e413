"""Simulator options: the pydantic model, durations and latency distribution specs."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# z-score of the 99th percentile of a standard normal: p99 = median * exp(Z99 * sigma).
_Z99 = 2.3263478740408408

DistKind = Literal["fixed", "uniform", "lognormal", "normal", "exponential"]


def parse_duration(text: str) -> float:
    """Seconds from ``"200ms"``, ``"1.5s"``, ``"2m"``, ``"1h"`` or a plain number of ms."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"invalid duration {text!r}: use e.g. 200ms, 1.5s, 2m or a number of ms")
    unit = (match.group(2) or "ms").lower()
    return float(match.group(1)) * _UNIT_SECONDS[unit]


@dataclass(frozen=True, slots=True)
class Distribution:
    """A delay distribution in seconds; ``sample`` draws one delay from a seeded RNG."""

    kind: DistKind
    a: float = 0.0
    b: float = 0.0
    cap: float | None = None

    @property
    def is_zero(self) -> bool:
        return self.kind == "fixed" and self.a == 0.0

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            value = rng.uniform(self.a, self.b)
        elif self.kind == "lognormal":
            value = rng.lognormvariate(self.a, self.b)
        elif self.kind == "normal":
            value = max(0.0, rng.gauss(self.a, self.b))
        else:
            value = rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0
        return value if self.cap is None else min(value, self.cap)

    def describe(self) -> str:
        if self.kind == "fixed":
            return f"{self.a * 1000:g}ms"
        if self.kind == "uniform":
            return f"uniform {self.a * 1000:g}-{self.b * 1000:g}ms"
        if self.kind == "lognormal":
            median, p99 = math.exp(self.a), math.exp(self.a + _Z99 * self.b)
            return f"lognormal median {median * 1000:.0f}ms p99 {p99 * 1000:.0f}ms"
        if self.kind == "normal":
            return f"normal mean {self.a * 1000:g}ms stddev {self.b * 1000:g}ms"
        return f"exponential mean {self.a * 1000:g}ms"


def _params(kind: str, body: str, names: tuple[str, ...]) -> tuple[list[float], float | None]:
    """Positional or ``name=value`` duration parameters, plus an optional ``max=`` cap."""
    values: dict[str, float] = {}
    cap: float | None = None
    parts = [p for p in body.split(",") if p.strip()]
    for position, part in enumerate(parts):
        if "=" in part:
            key, _, raw = part.partition("=")
            key = key.strip().lower()
        else:
            if position >= len(names):
                raise ValueError(f"{kind}: too many parameters in {body!r}")
            key, raw = names[position], part
        if key in names:
            values[key] = parse_duration(raw)
        elif key == "max":
            cap = parse_duration(raw)
        else:
            raise ValueError(f"{kind}: unknown parameter {key!r} (expected {', '.join(names)})")
    missing = [n for n in names if n not in values]
    if missing:
        raise ValueError(f"{kind}: missing {', '.join(missing)}")
    return [values[n] for n in names], cap


@lru_cache(maxsize=256)
def parse_distribution(spec: str) -> Distribution:
    """Parse ``"0"``, ``"200ms"``, ``"fixed:200ms"``, ``"uniform:100ms,300ms"``,
    ``"lognormal:median=1500ms,p99=20000ms"``, ``"normal:mean=..,stddev=.."`` or
    ``"exponential:mean=.."``; the random kinds accept ``max=..`` to cap the tail."""
    text = spec.strip()
    if text.lower() in ("", "0", "none", "off"):
        return Distribution("fixed")
    kind, sep, body = text.partition(":")
    kind = kind.strip().lower()
    if not sep:
        return Distribution("fixed", parse_duration(text))
    if kind == "fixed":
        return Distribution("fixed", parse_duration(body))
    if kind == "uniform":
        (low, high), cap = _params(kind, body, ("min", "max"))
        if high < low:
            raise ValueError(f"uniform: {body!r} has max below min")
        return Distribution("uniform", low, high, cap)
    if kind == "lognormal":
        (median, p99), cap = _params(kind, body, ("median", "p99"))
        if median <= 0 or p99 < median:
            raise ValueError("lognormal: need 0 < median <= p99")
        mu = math.log(median)
        return Distribution("lognormal", mu, (math.log(p99) - mu) / _Z99, cap)
    if kind == "normal":
        (mean, stddev), cap = _params(kind, body, ("mean", "stddev"))
        return Distribution("normal", mean, stddev, cap)
    if kind in ("exponential", "exp"):
        (mean,), cap = _params(kind, body, ("mean",))
        return Distribution("exponential", mean, 0.0, cap)
    raise ValueError(
        f"unknown distribution {kind!r}: use fixed, uniform, lognormal, normal or exponential"
    )


def _check_distribution(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a delay must be a duration or distribution spec, not a boolean")
    if isinstance(value, int | float):
        value = f"{value}ms"
    if isinstance(value, str):
        parse_distribution(value)
    return value


DelaySpec = Annotated[str, Field(description="a delay distribution spec, see parse_distribution")]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class SimulatorOptions(BaseModel):
    """How the simulator behaves: delays, output size, limits and faults."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency: DelaySpec = "0"
    """Delay before a non-streaming answer (and before the first chunk when ``ttft`` is unset)."""
    ttft: DelaySpec | None = None
    """Time to first token of a stream; ``None`` means the same as ``latency``."""
    inter_token: DelaySpec = "0"  # noqa: S105 - a delay, not a secret
    """Delay between consecutive content chunks of a stream."""
    completion_tokens: Annotated[int, Field(ge=1, le=1_000_000)] = 16
    """Words (= tokens) in an answer, capped by the request's max_(completion_)tokens."""
    stream_chunks: Annotated[int, Field(ge=1)] | None = None
    """Content chunks per stream; ``None`` means one chunk per token."""
    rpm: Annotated[int, Field(gt=0)] | None = None
    tpm: Annotated[int, Field(gt=0)] | None = None
    # Seconds of budget the rate-limit buckets hold: 60 lets a minute's worth through at
    # once (OpenAI's behaviour); 1 makes "1200 rpm" a steady 20 requests a second.
    burst_seconds: Annotated[float, Field(gt=0, le=60)] = 60.0
    error_rates: dict[int, Probability] = Field(default_factory=dict)
    """HTTP status -> probability that a request fails with it, e.g. ``{500: 0.02}``."""
    outages: list[tuple[float, float]] = Field(default_factory=list)
    """``(start_s, duration_s)`` windows, relative to server start, when every request fails."""
    outage_mode: Literal["error", "reset"] = "error"
    """``error``: 503 during outages; ``reset``: the connection is reset."""
    broken_stream_rate: Probability = 0.0
    context_window: Annotated[int, Field(gt=0)] | None = None
    content_filter_phrase: Annotated[str, Field(min_length=1)] | None = None
    api_key: str | None = None
    secret_key: str | None = None
    """Wires that sign requests (Bedrock's SigV4) verify signatures with this secret."""
    models: list[str] | None = None
    seed: int | None = None
    embedding_dim: Annotated[int, Field(ge=1, le=65536)] = 1536

    @field_validator("latency", "ttft", "inter_token", mode="before")
    @classmethod
    def _valid_distribution(cls, value: Any) -> Any:
        return _check_distribution(value)

    @field_validator("error_rates")
    @classmethod
    def _valid_error_rates(cls, value: dict[int, float]) -> dict[int, float]:
        for status in value:
            if not 400 <= status <= 599:
                raise ValueError(f"error status {status} is not a 4xx or 5xx code")
        if sum(value.values()) > 1.0 + 1e-9:
            raise ValueError("error rates add up to more than 1")
        return value

    @field_validator("outages")
    @classmethod
    def _valid_outages(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for start, duration in value:
            if start < 0 or duration <= 0:
                raise ValueError(f"outage {start}:{duration} needs start >= 0 and duration > 0")
        return value

    @property
    def latency_dist(self) -> Distribution:
        return parse_distribution(self.latency)

    @property
    def ttft_dist(self) -> Distribution:
        return parse_distribution(self.latency if self.ttft is None else self.ttft)

    @property
    def inter_token_dist(self) -> Distribution:
        return parse_distribution(self.inter_token)

    def describe_faults(self) -> str:
        """A one-line human summary of the delays and faults that are switched on."""
        parts: list[str] = []
        for name, dist in (
            ("latency", self.latency_dist),
            ("ttft", self.ttft_dist if self.ttft is not None else None),
            ("inter-token", self.inter_token_dist),
        ):
            if dist is not None and not dist.is_zero:
                parts.append(f"{name} {dist.describe()}")
        if self.rpm is not None:
            parts.append(f"rpm {self.rpm}")
        if self.tpm is not None:
            parts.append(f"tpm {self.tpm}")
        for status, rate in sorted(self.error_rates.items()):
            parts.append(f"{status} at {rate:.2%}")
        for start, duration in self.outages:
            parts.append(f"outage at {start:g}s for {duration:g}s ({self.outage_mode})")
        if self.broken_stream_rate:
            parts.append(f"broken streams {self.broken_stream_rate:.2%}")
        if self.context_window is not None:
            parts.append(f"context window {self.context_window}")
        if self.content_filter_phrase is not None:
            parts.append("content filter on")
        if self.api_key is not None:
            parts.append("api key required")
        return ", ".join(parts) if parts else "none"
