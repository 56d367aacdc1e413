"""`lockgate bench`: the profiler against simulators with known latency, limits and prices."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from lockgate.profiler import BenchOptions, profile
from lockgate.profiler.report import render
from tests.conftest import MASTER_KEY, PROVIDER_KEY, GatewayFactory, SimFactory, chats, dep


def priced(sim: Any, id_: str = "sim") -> dict[str, Any]:
    """A deployment at $1 / $2 per million input / output tokens."""
    return {**dep(sim, id_), "prices": {"input": "1", "output": "2"}}


def expected_usd(tokens: dict[str, Any], input_usd: float = 1.0, output_usd: float = 2.0) -> float:
    return (tokens["prompt_total"] * input_usd + tokens["completion_total"] * output_usd) / 1e6


async def metric(url: str, name: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as resp:
        text = await resp.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def test_gateway_latency_tokens_and_cost(
    make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    sim = await make_sim(latency="50ms")
    gateway = await make_gateway([{"name": "gpt-4o-mini", "deployments": [priced(sim)]}])
    options = BenchOptions(
        model="gpt-4o-mini",
        url=gateway.url,
        api_key=MASTER_KEY,
        rps=20,
        arrivals="fixed",
        duration=1.0,
        prompt_tokens=100,
        max_tokens=50,
    )
    report = await profile(options)

    requests = report["requests"]
    assert requests["sent"] == 19  # due at 50 ms, 100 ms, ... 950 ms
    assert requests["ok"] == requests["sent"] == chats(sim)
    assert requests["error_rate"] == 0 and requests["by_status"] == {"200": 19}
    assert 45 <= report["latency_ms"]["p50"] <= 250
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]
    assert report["ttft_ms"] is None  # not streamed
    tokens = report["tokens"]
    assert 95 <= tokens["prompt_per_request"] <= 110
    assert tokens["completion_per_request"] == 16  # the simulator's answer size
    # Every answer's x-lockgate-cost, summed, is what the gateway billed and what the
    # configured prices give for the reported tokens.
    cost = report["cost"]
    assert cost["source"] == "x-lockgate-cost header"
    assert cost["total_usd"] == pytest.approx(expected_usd(tokens), rel=1e-6)
    assert cost["total_usd"] == pytest.approx(await metric(gateway.url, "lockgate_spend_usd"))
    assert cost["per_request_usd"] == pytest.approx(cost["total_usd"] / 19)
    assert cost["per_day_usd"] == pytest.approx(cost["per_request_usd"] * 20 * 86400)
    assert cost["per_month_usd"] == pytest.approx(cost["per_day_usd"] * 30)
    assert report["gateway"] == {"deployments": {"sim": 19}, "fallbacks": 0, "mean_attempts": 1}
    assert report["limits"]["requests_per_minute"] is None
    assert report["limits"]["source"].startswith("not visible")
    table = render(report)
    rows = [re.split(r"\s{2,}", row.strip(), maxsplit=1) for row in table.splitlines()]
    lines = {row[0]: row[1] for row in rows if len(row) == 2}
    assert lines["by status"] == "200: 19"
    assert lines["total"].startswith(f"{report['latency_ms']['p50']:.1f} / ")
    assert lines["served by"] == "sim: 19"


async def test_direct_mode_reports_advertised_limits_and_429s(make_sim: SimFactory) -> None:
    # 60 rpm refilled a second at a time: about one request a second gets through.
    sim = await make_sim(latency="20ms", rpm=60, tpm=90_000, burst_seconds=1)
    options = BenchOptions(
        model="gpt-4o-mini",
        url=sim.base_url,
        api_key=PROVIDER_KEY,
        direct=True,
        rps=20,
        arrivals="fixed",
        duration=1.0,
        prompt_tokens=200,
        max_tokens=8,
        price_input=Decimal("1"),
        price_output=Decimal("2"),
    )
    report = await profile(options)

    requests = report["requests"]
    assert requests["sent"] == 19 == chats(sim)
    assert 1 <= requests["ok"] <= 5
    assert requests["rate_limited"] == requests["failed"] == requests["sent"] - requests["ok"]
    assert requests["rate_limited_rate"] == pytest.approx(requests["rate_limited"] / 19, abs=1e-4)
    limits = report["limits"]
    assert limits["source"] == "provider x-ratelimit-* headers"
    assert limits["requests_per_minute"] == 60
    assert limits["tokens_per_minute"] == 90_000
    assert limits["min_remaining_requests"] == 0
    assert report["tokens"]["completion_per_request"] == 8  # capped by max_tokens
    cost = report["cost"]
    assert cost["source"] == "usage at --price-input/--price-output"
    assert cost["total_usd"] == pytest.approx(expected_usd(report["tokens"]), rel=1e-6)
    assert report["gateway"] is None


async def test_stream_measures_time_to_first_token(
    make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    sim = await make_sim(ttft="80ms", inter_token="10ms", completion_tokens=6)
    gateway = await make_gateway([{"name": "gpt-4o-mini", "deployments": [priced(sim)]}])
    options = BenchOptions(
        model="gpt-4o-mini",
        url=gateway.url,
        api_key=MASTER_KEY,
        concurrency=2,
        duration=0.5,
        stream=True,
        prompt_tokens=50,
        price_input=Decimal("1"),
        price_output=Decimal("2"),
    )
    report = await profile(options)

    assert report["requests"]["ok"] == report["requests"]["sent"] >= 4
    ttft, total = report["ttft_ms"], report["latency_ms"]
    assert 75 <= ttft["p50"] <= 300
    # Five more chunks 10 ms apart follow the first token.
    assert total["p50"] >= ttft["p50"] + 40
    assert report["tokens"]["completion_per_request"] == 6
    # Streams carry no cost header: priced from the usage chunk.
    assert report["cost"]["source"] == "usage at --price-input/--price-output"
    assert report["cost"]["total_usd"] == pytest.approx(expected_usd(report["tokens"]), rel=1e-6)
    assert report["cost"]["load_rps"] == pytest.approx(report["throughput"]["ok_rps"], rel=0.01)


async def test_gateway_429s_when_the_load_exceeds_the_provider_limit(
    make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    sim = await make_sim(latency="10ms", rpm=60, burst_seconds=1)
    gateway = await make_gateway(
        [{"name": "gpt-4o-mini", "deployments": [dep(sim, "sim")]}],
        retry={"retries": 0},
        sections={"admission": {"max_wait": 0}},
    )
    options = BenchOptions(
        model="gpt-4o-mini",
        url=gateway.url,
        api_key=MASTER_KEY,
        rps=20,
        arrivals="fixed",
        duration=1.0,
        prompt_tokens=20,
    )
    report = await profile(options)

    requests = report["requests"]
    assert requests["ok"] >= 1
    assert requests["rate_limited"] >= 10
    assert requests["rate_limited_rate"] >= 0.5
    assert set(requests["by_status"]) == {"200", "429"}


async def test_cli_profiles_a_gateway_started_from_config(
    make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim(latency="50ms", rpm=6000)
    config = tmp_path / "lockgate.yaml"
    deployment = {**priced(sim), "api_base": sim.base_url}
    text = orjson.dumps(  # JSON is YAML
        {
            "server": {"master_key": MASTER_KEY},
            "database": None,
            "models": [{"name": "gpt-4o-mini", "deployments": [deployment]}],
        }
    )
    await asyncio.to_thread(config.write_bytes, text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "lockgate", "bench", "--config", str(config)),
        *("--model", "gpt-4o-mini", "--rps", "10", "--duration", "1s", "--arrivals", "fixed"),
        *("--prompt-tokens", "60", "--json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**env, "LOCKGATE_LOG_LEVEL": "WARNING"},
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, stderr.decode()
    report = orjson.loads(stdout)

    assert report["target"]["mode"] == "gateway"
    assert report["requests"]["ok"] == report["requests"]["sent"] == 9 == chats(sim)
    assert 45 <= report["latency_ms"]["p50"] <= 250
    assert report["limits"] == {
        "source": "provider, as learned by the in-process gateway",
        "requests_per_minute": 6000,
        "tokens_per_minute": None,
        "min_remaining_requests": None,
        "min_remaining_tokens": None,
    }
    cost = report["cost"]
    assert cost["source"] == "x-lockgate-cost header"
    assert cost["total_usd"] == pytest.approx(expected_usd(report["tokens"]), rel=1e-6)
    assert cost["per_day_usd"] == pytest.approx(cost["per_request_usd"] * 10 * 86400)
    # Progress went to stderr as plain lines (not a terminal).
    assert b"\r" not in stderr and b"done 9" in stderr


async def test_prompts_file_is_cycled_in_closed_loop(make_sim: SimFactory, tmp_path: Path) -> None:
    sim = await make_sim(latency="20ms")
    prompts = tmp_path / "prompts.jsonl"
    lines = [
        orjson.dumps({"prompt": "first question", "max_tokens": 3}),
        b"",
        orjson.dumps({"messages": [{"role": "user", "content": "second"}], "model": "ignored"}),
    ]
    await asyncio.to_thread(prompts.write_bytes, b"\n".join(lines))
    options = BenchOptions(
        model="gpt-4o-mini",
        url=sim.base_url.removesuffix("/v1"),
        api_key=PROVIDER_KEY,
        direct=True,
        concurrency=1,
        duration=0.3,
        prompts_file=str(prompts),
        price_input=Decimal("1"),
        price_output=Decimal("2"),
    )
    report = await profile(options)

    sent = [r.body for r in sim.requests]
    assert report["requests"]["ok"] == len(sent) >= 4
    assert report["target"]["load"] == {"concurrency": 1}
    assert [b["messages"][0]["content"] for b in sent[:4]] == ["first question", "second"] * 2
    assert {b["model"] for b in sent} == {"gpt-4o-mini"}
    assert sent[0]["max_tokens"] == 3 and "max_tokens" not in sent[1]


async def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        BenchOptions(model="m", rps=1, concurrency=1)
    with pytest.raises(ValueError, match="both --price-input"):
        BenchOptions(model="m", rps=1, price_input=Decimal(1))
