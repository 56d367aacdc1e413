"""The exact response cache through the HTTP app: hit, miss, refresh and bypass, controls
from the SDK, safety rules, TTL, accounting, admin. Upstream calls counted at the simulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import openai
import pytest

from tests.conftest import MASTER_KEY, GatewayFactory, SimFactory, chats, dep
from tests.integration.cache_helpers import ASK, cached_gateway, database, team_keys


async def test_second_identical_request_is_a_hit_that_costs_nothing(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await cached_gateway(make_gateway, make_sim)
    async with gw.client() as client:
        first = await client.chat.completions.with_raw_response.create(
            model="m", messages=ASK, temperature=0, user="alice"
        )
        second = await client.chat.completions.with_raw_response.create(
            model="m", messages=ASK, temperature=0, user="bob", metadata={"run": "2"}
        )
    assert chats(upstream) == 1
    assert first.headers["x-lockgate-cache"] == "miss"
    assert "x-lockgate-cache-age" not in first.headers
    assert second.headers["x-lockgate-cache"] == "hit"
    assert int(second.headers["x-lockgate-cache-age"]) >= 0
    a, b = first.parse(), second.parse()
    assert a.choices[0].message.content == b.choices[0].message.content
    assert b.usage is not None and b.usage.completion_tokens == a.usage.completion_tokens  # type: ignore[union-attr]
    # Accounting: the hit is recorded with what it saved; the upstream tokens count once.
    cache_metrics = gw.state.pipeline.cache.metrics  # type: ignore[union-attr]
    usage = a.usage
    assert usage is not None
    saved = cache_metrics.saved_tokens
    assert saved[("m", "prompt")] == usage.prompt_tokens
    assert saved[("m", "completion")] == usage.completion_tokens
    expected = (usage.prompt_tokens * 1.0 + usage.completion_tokens * 2.0) / 1e6
    assert cache_metrics.saved_usd["m"] == pytest.approx(expected)
    assert gw.state.metrics.tokens[("m", "a", "completion")] == usage.completion_tokens
    async with aiohttp.ClientSession() as http, http.get(f"{gw.url}/metrics") as resp:
        text = await resp.text()
    assert 'lockgate_cache_requests_total{model="m",result="hit",scope="tenant"} 1.0' in text
    assert 'lockgate_cache_requests_total{model="m",result="miss",scope="tenant"} 1.0' in text
    assert 'lockgate_cache_saved_tokens_total{model="m",type="completion"}' in text
    assert "key-" not in text and "master" not in text


async def test_changed_parameters_miss(make_gateway: GatewayFactory, make_sim: SimFactory) -> None:
    gw, upstream = await cached_gateway(make_gateway, make_sim)
    async with gw.client() as client:
        await client.chat.completions.create(model="m", messages=ASK, temperature=0)
        await client.chat.completions.create(model="m", messages=ASK, temperature=0, max_tokens=9)
        other = [{"role": "user", "content": "Summarise the plot of Macbeth."}]
        await client.chat.completions.create(model="m", messages=other, temperature=0)
        await client.chat.completions.create(
            model="m", messages=ASK, temperature=0, response_format={"type": "json_object"}
        )
        # Text given as content parts is the same request as the plain string.
        parts = [{"role": "user", "content": [{"type": "text", "text": ASK[0]["content"]}]}]
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=parts, temperature=0
        )
    assert chats(upstream) == 4
    assert raw.headers["x-lockgate-cache"] == "hit"


async def test_refresh_no_store_and_bypass_from_headers(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await cached_gateway(make_gateway, make_sim)

    async def ask(**headers: str) -> str:
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=ASK, temperature=0, extra_headers=headers
        )
        return raw.headers["x-lockgate-cache"]

    async with gw.client() as client:
        assert await ask(**{"x-lockgate-cache": "no-store"}) == "miss"
        assert chats(upstream) == 1
        assert await ask() == "miss"  # no-store kept nothing
        assert await ask() == "hit"
        assert await ask(**{"x-lockgate-cache": "no-cache"}) == "refresh"
        assert chats(upstream) == 3
        assert await ask(**{"x-lockgate-cache": "off"}) == "bypass"
        assert chats(upstream) == 4
        assert await ask() == "hit"
        assert chats(upstream) == 4
        with pytest.raises(openai.BadRequestError) as caught:
            await ask(**{"x-lockgate-cache": "sometimes"})
    assert caught.value.body["param"] == "x-lockgate-cache"  # type: ignore[index]


async def test_controls_from_extra_body_never_reach_the_provider(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await cached_gateway(make_gateway, make_sim)
    async with gw.client() as client:
        first = await client.chat.completions.with_raw_response.create(
            model="m", messages=ASK, temperature=0, extra_body={"cache": {"namespace": "eval"}}
        )
        other_ns = await client.chat.completions.with_raw_response.create(
            model="m", messages=ASK, temperature=0
        )
        same_ns = await client.chat.completions.with_raw_response.create(
            model="m", messages=ASK, temperature=0, extra_body={"cache": {"namespace": "eval"}}
        )
        refreshed = await client.chat.completions.with_raw_response.create(
            model="m",
            messages=ASK,
            temperature=0,
            extra_body={"cache": {"namespace": "eval", "no_cache": True}},
        )
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(
                model="m", messages=ASK, extra_body={"cache": {"ttl": "soon"}}
            )
    assert [r.headers["x-lockgate-cache"] for r in (first, other_ns, same_ns, refreshed)] == [
        "miss",
        "miss",
        "hit",
        "refresh",
    ]
    assert chats(upstream) == 3
    assert all("cache" not in r.body for r in upstream.requests)


async def test_sampled_requests_are_cached_only_when_opted_in(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await cached_gateway(make_gateway, make_sim)
    async with gw.client() as client:
        for _ in range(2):
            raw = await client.chat.completions.with_raw_response.create(model="m", messages=ASK)
            assert raw.headers["x-lockgate-cache"] == "bypass"
        assert chats(upstream) == 2
        for expected in ("miss", "hit"):
            raw = await client.chat.completions.with_raw_response.create(
                model="m", messages=ASK, temperature=0.7, extra_headers={"x-lockgate-cache": "on"}
            )
            assert raw.headers["x-lockgate-cache"] == expected
    assert chats(upstream) == 3

    gw2, upstream2 = await cached_gateway(make_gateway, make_sim, model_cache={"temperature": True})
    async with gw2.client() as client:
        for expected in ("miss", "hit"):
            raw = await client.chat.completions.with_raw_response.create(
                model="m", messages=ASK, temperature=1.0
            )
            assert raw.headers["x-lockgate-cache"] == expected
    assert chats(upstream2) == 1


async def test_truncated_answers_tool_calls_and_errors_are_not_cached(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await cached_gateway(make_gateway, make_sim, sim={"completion_tokens": 16})
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ]
    async with gw.client() as client:
        for _ in range(2):
            reply = await client.chat.completions.create(
                model="m", messages=ASK, temperature=0, max_tokens=4
            )
            assert reply.choices[0].finish_reason == "length"
        assert chats(upstream) == 2
        for _ in range(2):
            reply = await client.chat.completions.create(
                model="m", messages=ASK, temperature=0, tools=tools, tool_choice="required"
            )
            assert reply.choices[0].finish_reason == "tool_calls"
        assert chats(upstream) == 4
    writes = gw.state.pipeline.cache.metrics.writes  # type: ignore[union-attr]
    assert writes == {("m", "not_storable"): 4}

    # An error answer is never stored: asked again, it is asked upstream again.
    failing, broken = await cached_gateway(make_gateway, make_sim, sim={"error_rates": {400: 1.0}})
    async with failing.client() as client:
        for _ in range(2):
            with pytest.raises(openai.BadRequestError):
                await client.chat.completions.create(model="m", messages=ASK, temperature=0)
    assert chats(broken) == 2


async def test_truncated_answers_are_cached_when_configured(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await cached_gateway(
        make_gateway, make_sim, cache={"store": {"truncated": True}}
    )
    async with gw.client() as client:
        for _ in range(2):
            await client.chat.completions.create(
                model="m", messages=ASK, temperature=0, max_tokens=4
            )
    assert chats(upstream) == 1


async def test_entries_expire_after_their_ttl(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await cached_gateway(make_gateway, make_sim, model_cache={"ttl": 60})
    short = {"x-lockgate-cache-ttl": "0.3"}
    async with gw.client() as client:

        async def ask(**headers: str) -> str:
            raw = await client.chat.completions.with_raw_response.create(
                model="m", messages=ASK, temperature=0, extra_headers=headers
            )
            return raw.headers["x-lockgate-cache"]

        assert await ask(**short) == "miss"
        assert await ask() == "hit"
        await asyncio.sleep(0.6)
        assert await ask() == "miss"  # expired; stored again with the group's 60 s
        await asyncio.sleep(0.6)
        assert await ask() == "hit"
    assert chats(upstream) == 2


async def test_cache_off_for_a_model_group(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await cached_gateway(make_gateway, make_sim, model_cache={"enabled": False})
    async with gw.client() as client:
        for _ in range(2):
            raw = await client.chat.completions.with_raw_response.create(
                model="m", messages=ASK, temperature=0
            )
            assert raw.headers["x-lockgate-cache"] == "bypass"
    assert chats(upstream) == 2


async def test_admin_stats_and_purges(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    gw, upstream = await cached_gateway(make_gateway, make_sim, sections=database(tmp_path))
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    async with gw.client() as client:
        for ns in ("a", "b"):
            await client.chat.completions.create(
                model="m",
                messages=ASK,
                temperature=0,
                extra_headers={"x-lockgate-cache-namespace": ns},
            )
        await client.chat.completions.create(model="m", messages=ASK, temperature=0)
        await client.chat.completions.create(model="m", messages=ASK, temperature=0)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gw.url}/admin/cache/stats", headers=auth) as resp:
            stats = await resp.json()
        assert resp.status == 200
        assert stats["backend"] == "memory"
        assert stats["store"]["entries"] == 3
        assert stats["models"]["m"]["hit"] == 1
        assert stats["models"]["m"]["miss"] == 3
        assert stats["models"]["m"]["hit_rate"] == pytest.approx(0.25)
        async with http.delete(f"{gw.url}/admin/cache?namespace=a", headers=auth) as resp:
            assert (await resp.json())["purged"] == 1
        async with http.delete(f"{gw.url}/admin/cache?model=other", headers=auth) as resp:
            assert (await resp.json())["purged"] == 0
        async with http.delete(f"{gw.url}/admin/cache?model=m", headers=auth) as resp:
            assert (await resp.json())["purged"] == 2
        async with http.get(f"{gw.url}/admin/cache/stats") as resp:
            assert resp.status == 401
        keys = await team_keys(gw)  # a virtual key is not the master key
        team_key = {"Authorization": f"Bearer {keys['sk-team-a-1']}"}
        async with http.delete(f"{gw.url}/admin/cache", headers=team_key) as resp:
            assert resp.status == 403
            assert (await resp.json())["error"]["type"] == "permission_error"
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=ASK, temperature=0
        )
    assert raw.headers["x-lockgate-cache"] == "miss"
    assert chats(upstream) == 4


async def test_no_cache_section_means_no_cache(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    upstream = await make_sim()
    gw = await make_gateway([{"name": "m", "deployments": [dep(upstream, "a")]}])
    async with gw.client() as client:
        for _ in range(2):
            raw = await client.chat.completions.with_raw_response.create(
                model="m", messages=ASK, temperature=0
            )
            assert "x-lockgate-cache" not in raw.headers
    assert chats(upstream) == 2
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {MASTER_KEY}"}
        async with http.get(f"{gw.url}/admin/cache/stats", headers=headers) as resp:
            assert resp.status == 404


async def test_an_answer_from_a_fallback_group_is_not_stored(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    broken = await make_sim(error_rates={500: 1.0})
    backup = await make_sim()
    models = [
        {"name": "m", "deployments": [dep(broken, "a")], "retries": 0, "fallbacks": ["b"]},
        {"name": "b", "deployments": [dep(backup, "b")]},
    ]
    gw = await make_gateway(models, sections={"cache": {}})
    async with gw.client() as client:
        for _ in range(2):
            raw = await client.chat.completions.with_raw_response.create(
                model="m", messages=ASK, temperature=0
            )
            assert raw.headers["x-lockgate-fallback"] == "true"
            assert raw.headers["x-lockgate-cache"] == "miss"
    assert chats(backup) == 2
    assert gw.state.pipeline.cache.metrics.writes == {("m", "fallback"): 2}  # type: ignore[union-attr]
