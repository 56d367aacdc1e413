"""Simulator building blocks: option parsing, delay distributions, rate limits, content."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from lockgate.providers.ratelimits import openai_duration
from lockgate.providers.simulator import SimulatorOptions
from lockgate.providers.simulator.content import placeholder, reply_pieces
from lockgate.providers.simulator.errors import SimulatedError
from lockgate.providers.simulator.faults import RateLimiter, in_outage, pick_error
from lockgate.providers.simulator.options import parse_distribution, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("200ms", 0.2), ("200", 0.2), ("1.5s", 1.5), ("2m", 120.0), ("1h", 3600.0), (" 7 ms ", 0.007)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "fast", "-5ms", "10 parsecs"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_distributions_sample_in_range() -> None:
    rng = random.Random(3)
    assert parse_distribution("0").is_zero
    assert parse_distribution("fixed:200ms").sample(rng) == pytest.approx(0.2)
    assert parse_distribution("250").sample(rng) == pytest.approx(0.25)
    uniform = parse_distribution("uniform:100ms,300ms")
    assert all(0.1 <= uniform.sample(rng) <= 0.3 for _ in range(200))
    assert parse_distribution("uniform:min=1s,max=2s").sample(rng) >= 1.0
    lognormal = parse_distribution("lognormal:median=1500ms,p99=20000ms")
    samples = sorted(lognormal.sample(rng) for _ in range(4000))
    assert 1.2 < samples[2000] < 1.8
    assert 12.0 < samples[3960] < 30.0
    capped = parse_distribution("lognormal:median=1s,p99=60s,max=2s")
    assert max(capped.sample(rng) for _ in range(500)) <= 2.0
    assert parse_distribution("normal:mean=10ms,stddev=5ms").sample(rng) >= 0.0
    assert parse_distribution("exponential:mean=10ms").sample(rng) >= 0.0
    assert "median 1500ms" in lognormal.describe()


@pytest.mark.parametrize(
    "spec",
    ["gamma:1s", "uniform:3s,1s", "lognormal:median=2s", "lognormal:p99=1s,median=2s", "x:"],
)
def test_bad_distributions_are_rejected(spec: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each spec fails with its own message
        parse_distribution(spec)


def test_options_validation() -> None:
    assert SimulatorOptions(latency=200).latency == "200ms"
    assert SimulatorOptions(error_rates={"500": 0.5}).error_rates == {500: 0.5}  # type: ignore[dict-item]
    for bad in (
        {"latency": "soon"},
        {"error_rates": {200: 0.1}},
        {"error_rates": {500: 0.7, 503: 0.7}},
        {"outages": [(5, 0)]},
        {"rpm": 0},
        {"unknown": 1},
        {"broken_stream_rate": 1.5},
    ):
        with pytest.raises(ValidationError):
            SimulatorOptions.model_validate(bad)
    options = SimulatorOptions()
    with pytest.raises(ValidationError):
        options.latency = "nonsense"
    assert options.describe_faults() == "none"
    described = SimulatorOptions(rpm=60, error_rates={500: 0.02}, outages=[(60, 30)])
    assert described.describe_faults() == "rpm 60, 500 at 2.00%, outage at 60s for 30s (error)"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0591, "60ms"),
        (0.059, "59ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.9985, "59.999s"),
        (59.9994, "1m0s"),
        (360, "6m0s"),
        (90.25, "1m30.25s"),
        (3725, "1h2m5s"),
    ],
)
def test_openai_duration(seconds: float, text: str) -> None:
    assert openai_duration(seconds) == text


def test_rate_limiter_refills_continuously() -> None:
    limiter = RateLimiter()
    headers = limiter.admit(0.0, 60, None, 10, "m")
    assert headers["x-ratelimit-remaining-requests"] == "59"
    assert headers["x-ratelimit-reset-requests"] == "1s"
    assert "x-ratelimit-limit-tokens" not in headers
    for _ in range(59):
        limiter.admit(0.0, 60, None, 10, "m")
    with pytest.raises(SimulatedError) as info:
        limiter.admit(0.5, 60, None, 10, "m")
    assert info.value.status == 429
    assert info.value.headers["retry-after"] == "1"
    assert info.value.headers["retry-after-ms"] == "500"
    limiter.admit(1.0, 60, None, 10, "m")  # one request refilled after a second
    limiter.admit(1.0, 120, None, 10, "m")  # a changed limit starts a fresh bucket
    assert limiter.admit(1.0, None, None, 10, "m") == {}


def test_rate_limiter_request_too_large() -> None:
    limiter = RateLimiter()
    with pytest.raises(SimulatedError) as info:
        limiter.admit(0.0, None, 100, 500, "m")
    assert info.value.type == "tokens"
    assert "Request too large" in info.value.message


def test_error_picking_and_outages() -> None:
    rng = random.Random(5)
    picks = [pick_error(rng, {500: 0.25, 503: 0.25}) for _ in range(4000)]
    assert 800 < picks.count(500) < 1200
    assert 800 < picks.count(503) < 1200
    assert pick_error(rng, {}) is None
    assert in_outage(65.0, [(60.0, 30.0)])
    assert not in_outage(90.0, [(60.0, 30.0)])


def test_content_helpers() -> None:
    assert reply_pieces(1, 4)[0] == "Simulated"
    assert len(reply_pieces(99, 50)) == 50
    schema = {
        "type": "object",
        "properties": {
            "kind": {"$ref": "#/$defs/kind"},
            "n": {"type": ["integer", "null"], "minimum": 3},
            "nested": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
            "opt": {"type": "string"},
        },
        "required": ["kind", "n", "nested"],
        "$defs": {"kind": {"enum": ["a", "b"]}},
    }
    assert placeholder(schema, required_only=True) == {"kind": "a", "n": 3, "nested": {}}
    full = placeholder(schema)
    assert full["nested"] == {"ok": True} and full["opt"] == "simulated"


def test_burst_seconds_makes_the_limit_steady() -> None:
    from lockgate.providers.simulator.faults import RateLimiter

    limiter = RateLimiter()
    admitted = 0
    for _ in range(100):
        try:
            limiter.admit(1000.0, 1200, None, 0, "m", burst_s=1.0)
            admitted += 1
        except Exception:
            break
    assert admitted == 20  # one second's worth of a 1200 rpm limit
    headers = limiter.admit(1000.5, 1200, None, 0, "m", burst_s=1.0)
    assert headers["x-ratelimit-limit-requests"] == "1200"
