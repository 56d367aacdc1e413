"""Spend through the real HTTP app with the openai SDK: every request leaves one ledger
row with its tokens, cost, status, deployment and request id; non-streamed answers carry
their cost in `x-lockgate-cost`."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from sqlalchemy import select

from lockgate.providers.simulator import SimulatorOptions
from lockgate.storage.schema import spend_ledger
from tests.conftest import (
    HELLO,
    MASTER_KEY,
    PROVIDER_KEY,
    Gateway,
    GatewayFactory,
    SimFactory,
    dep,
    wait_until,
)

# gpt-4o-mini in genai-prices: USD 0.15 / 0.60 per million input / output tokens.
INPUT_NANOS, OUTPUT_NANOS = 150, 600


def database(tmp_path: Path, **options: Any) -> dict[str, Any]:
    return {
        "database": {
            "url": f"sqlite:///{tmp_path}/lockgate.db",
            "spool_path": str(tmp_path / "ledger.spool"),
            "flush_interval": 0.02,
            **options,
        }
    }


async def rows(gw: Gateway, count: int) -> dict[str, dict[str, Any]]:
    """The ledger rows by request id, once ``count`` have been written."""
    db = gw.state.database
    assert db is not None
    await wait_until(lambda: db.ledger.counts["written"] >= count, 10)
    async with db.engine.connect() as conn:
        result = await conn.execute(select(spend_ledger))
        return {row["request_id"]: dict(row) for row in result.mappings()}


async def test_answers_streams_cut_offs_and_failures_are_billed(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim()
    broken = await make_sim(error_rates={500: 1.0})
    gw = await make_gateway(
        [
            {"name": "gpt-4o-mini", "deployments": [dep(sim, "primary")]},
            {"name": "broken", "deployments": [dep(broken, "down", "gpt-4o-mini")]},
        ],
        retry={"retries": 1},
        sections=database(tmp_path),
    )
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HELLO, extra_headers={"x-request-id": "t-plain"}
        )
        answer = raw.parse()
        assert answer.usage is not None
        plain_cost = (
            answer.usage.prompt_tokens * INPUT_NANOS + answer.usage.completion_tokens * OUTPUT_NANOS
        )
        assert Decimal(raw.headers["x-lockgate-cost"]) == Decimal(plain_cost) / 10**9

        stream = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-request-id": "t-stream"},
        )
        assert "x-lockgate-cost" not in stream.headers  # not known before the stream ends
        chunks = [chunk async for chunk in stream.parse()]
        streamed_usage = chunks[-1].usage
        assert streamed_usage is not None

        with pytest.raises(openai.InternalServerError) as failed:
            await client.chat.completions.create(
                model="broken", messages=HELLO, extra_headers={"x-request-id": "t-failed"}
            )
        assert failed.value.status_code == 502

    # A client that hangs up after the first chunks of a slow stream.
    sim.options = SimulatorOptions(api_key=PROVIDER_KEY, inter_token="50ms", stream_chunks=40,
                                   completion_tokens=400)  # fmt: skip
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": HELLO, "stream": True},
            headers={"Authorization": f"Bearer {MASTER_KEY}", "x-request-id": "t-cut"},
        )
        assert resp.status == 200
        for _ in range(3):
            assert (await resp.content.readline()).startswith(b"data: ")
            await resp.content.readline()
        resp.close()
    await wait_until(lambda: sim.disconnects == 1)

    ledger = await rows(gw, 4)
    assert set(ledger) == {"t-plain", "t-stream", "t-failed", "t-cut"}
    plain = ledger["t-plain"]
    assert (plain["prompt_tokens"], plain["completion_tokens"]) == (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
    )
    assert plain["cost_nanos"] == plain_cost
    assert (plain["status"], plain["http_status"], plain["stream"]) == ("ok", 200, False)
    assert (plain["deployment"], plain["provider"], plain["model"]) == (
        "primary", "openai", "gpt-4o-mini",
    )  # fmt: skip
    assert (plain["key_id"], plain["model_group"], plain["priced"]) == (
        "master",
        "gpt-4o-mini",
        True,
    )

    streamed = ledger["t-stream"]
    assert streamed["stream"] and streamed["status"] == "ok"
    assert streamed["completion_tokens"] == streamed_usage.completion_tokens
    assert streamed["cost_nanos"] == (
        streamed_usage.prompt_tokens * INPUT_NANOS + streamed_usage.completion_tokens * OUTPUT_NANOS
    )
    assert not streamed["usage_estimated"]

    fail = ledger["t-failed"]
    assert (fail["status"], fail["http_status"], fail["cost_nanos"]) == ("upstream", 502, 0)
    assert (fail["deployment"], fail["attempts"], fail["completion_tokens"]) == ("down", 2, 0)

    cut = ledger["t-cut"]
    assert (cut["status"], cut["http_status"], cut["stream"]) == ("client_disconnected", 499, True)
    # Billed for what it produced: the prompt and the tokens streamed before the hang-up,
    # estimated since the upstream's usage comes only at the end.
    assert cut["usage_estimated"]
    assert 0 < cut["completion_tokens"] < 400
    assert cut["prompt_tokens"] > 0
    assert cut["cost_nanos"] == (
        cut["prompt_tokens"] * INPUT_NANOS + cut["completion_tokens"] * OUTPUT_NANOS
    )


async def test_coalesced_followers_cost_nothing(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim(latency="300ms")
    gw = await make_gateway([{"name": "gpt-4o-mini", "deployments": [dep(sim, "d")]}],
                            sections=database(tmp_path))  # fmt: skip
    async with gw.client() as client:
        replies = await asyncio.gather(
            *(
                client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini",
                    messages=HELLO,
                    temperature=0,
                    extra_headers={"x-request-id": f"t-{i}"},
                )
                for i in range(3)
            )
        )
    assert sim.counts["/v1/chat/completions"] == 1
    costs = sorted(Decimal(r.headers["x-lockgate-cost"]) for r in replies)
    assert costs[0] == costs[1] == 0 and costs[2] > 0
    ledger = await rows(gw, 3)
    leaders = [r for r in ledger.values() if not r["coalesced"]]
    followers = [r for r in ledger.values() if r["coalesced"]]
    assert len(leaders) == 1 and len(followers) == 2
    assert leaders[0]["cost_nanos"] == int(costs[2] * 10**9)
    assert all(f["cost_nanos"] == 0 and f["completion_tokens"] == 0 for f in followers)
    assert all(f["deployment"] == "d" and f["status"] == "ok" for f in followers)


async def test_configured_prices_and_unpriced_models(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    sim = await make_sim(completion_tokens=1000)
    own = {**dep(sim, "own", "my-model"), "provider": "vllm",
           "prices": {"input": 2, "output": "3.5"}}  # fmt: skip
    free = {**dep(sim, "free", "my-model"), "provider": "vllm"}
    gw = await make_gateway(
        [
            {"name": "priced", "deployments": [own]},
            {"name": "unpriced", "deployments": [free]},
        ],
        sections=database(tmp_path),
    )
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="priced", messages=HELLO, extra_headers={"x-request-id": "t-own"}
        )
        usage = raw.parse().usage
        assert usage is not None
        expected = usage.prompt_tokens * 2_000 + usage.completion_tokens * 3_500
        assert Decimal(raw.headers["x-lockgate-cost"]) == Decimal(expected) / 10**9
        free_raw = await client.chat.completions.with_raw_response.create(
            model="unpriced", messages=HELLO, extra_headers={"x-request-id": "t-free"}
        )
        assert free_raw.headers["x-lockgate-cost"] == "0"
    ledger = await rows(gw, 2)
    assert (ledger["t-own"]["cost_nanos"], ledger["t-own"]["priced"]) == (expected, True)
    assert (ledger["t-free"]["cost_nanos"], ledger["t-free"]["priced"]) == (0, False)
    async with aiohttp.ClientSession() as http, http.get(f"{gw.url}/metrics") as resp:
        metrics = await resp.text()
    assert 'lockgate_unpriced_answers_total{deployment="free",model="my-model"} 1.0' in metrics
    assert 'lockgate_ledger_records_total{outcome="written"} 2.0' in metrics
    assert f'lockgate_spend_usd_total{{deployment="own"}} {expected / 10**9}' in metrics
