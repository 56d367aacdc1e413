"""The semantic cache with the real local model (all-MiniLM-L6-v2 on onnxruntime): a
paraphrase is a hit, a different question a miss, within one scope and model group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai

from tests.conftest import GatewayFactory, SimFactory, chats, dep, wait_until
from tests.integration.cache_helpers import database, team_keys

SYSTEM = {"role": "system", "content": "You answer geography questions in one sentence."}


def _ask(text: str) -> list[dict[str, Any]]:
    return [SYSTEM, {"role": "user", "content": text}]


async def _headers(client: openai.AsyncOpenAI, messages: list[dict[str, Any]], **extra: Any) -> str:
    raw = await client.chat.completions.with_raw_response.create(
        model="m", messages=messages, temperature=0, **extra
    )
    return str(raw.headers["x-lockgate-cache"])


async def _gateway(
    make_gateway: GatewayFactory,
    make_sim: SimFactory,
    sections: dict[str, Any] | None = None,
    **semantic: Any,
) -> Any:
    upstream = await make_sim()
    model = {
        "name": "m",
        "deployments": [dep(upstream, "a")],
        "cache": {"semantic": {"enabled": True, **semantic}},
    }
    return await make_gateway([model], sections={"cache": {}, **(sections or {})}), upstream


async def test_a_paraphrase_hits_and_a_different_question_misses(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await _gateway(make_gateway, make_sim)
    async with gw.client() as client:
        assert await _headers(client, _ask("What is the capital of France?")) == "miss"
        assert await _headers(client, _ask("Which city is the capital of France?")) == "hit"
        assert chats(upstream) == 1
        assert await _headers(client, _ask("How do I bake sourdough bread?")) == "miss"
        assert await _headers(client, _ask("What is the capital of Germany?")) == "miss"
        # The same question under another system prompt is another neighbourhood.
        other = [{"role": "system", "content": "Answer in French."}, _ask("x")[1]]
        other[1]["content"] = "Which city is the capital of France?"
        assert await _headers(client, other) == "miss"
        # So is the same question with other parameters.
        assert (
            await _headers(client, _ask("Which city is France's capital?"), max_tokens=5) == "miss"
        )
        # Embeddings blur numbers and negations; those must match exactly.
        assert await _headers(client, _ask("What is 17 times 23?")) == "miss"
        assert await _headers(client, _ask("What is 17 times 24?")) == "miss"
        assert await _headers(client, _ask("Can I drive with a learner permit?")) == "miss"
        assert await _headers(client, _ask("Can I drive without a learner permit?")) == "miss"
    assert chats(upstream) == 9
    lookups = gw.state.pipeline.cache.metrics.lookups  # type: ignore[union-attr]
    assert lookups[("m", "tenant", "semantic_hit")] == 1


async def test_semantic_hits_stay_within_a_team(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    gw, upstream = await _gateway(make_gateway, make_sim, database(tmp_path))
    keys = await team_keys(gw)
    async with (
        gw.client(api_key=keys["sk-team-a-1"]) as a,
        gw.client(api_key=keys["sk-team-b-1"]) as b,
    ):
        assert await _headers(a, _ask("What is the capital of France?")) == "miss"
        assert await _headers(b, _ask("Which city is the capital of France?")) == "miss"
        assert await _headers(a, _ask("Tell me the capital city of France.")) == "hit"
    assert chats(upstream) == 2


async def test_tool_turns_are_not_matched_semantically(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    gw, upstream = await _gateway(make_gateway, make_sim)
    tools = [{"type": "function", "function": {"name": "atlas", "parameters": {"type": "object"}}}]
    async with gw.client() as client:
        assert await _headers(client, _ask("What is the capital of France?"), tools=tools) == "miss"
        assert (
            await _headers(client, _ask("Which city is the capital of France?"), tools=tools)
            == "miss"
        )
    assert chats(upstream) == 2


async def test_embeddings_from_a_configured_model_through_the_gateway(
    make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    upstream = await make_sim()
    models = [
        {
            "name": "m",
            "deployments": [dep(upstream, "a")],
            "cache": {"semantic": {"enabled": True, "embedding_model": "embed"}},
        },
        {
            "name": "embed",
            "deployments": [{"provider": "local-embed", "model": "all-MiniLM-L6-v2"}],
        },
    ]
    gw = await make_gateway(models, sections={"cache": {}})
    async with gw.client() as client:
        assert await _headers(client, _ask("What is the capital of France?")) == "miss"
        assert await _headers(client, _ask("Which city is the capital of France?")) == "hit"
        assert await _headers(client, _ask("How do I bake sourdough bread?")) == "miss"
    assert chats(upstream) == 2
    assert gw.state.metrics.tokens[("embed", "local-embed/all-MiniLM-L6-v2", "prompt")] > 0


async def test_replicas_match_each_others_paraphrases_through_redis(
    make_gateway: GatewayFactory, make_sim: SimFactory, redis_url: str, redis_prefix: str
) -> None:
    upstream = await make_sim()
    model = {
        "name": "m",
        "deployments": [dep(upstream, "a")],
        "cache": {"semantic": {"enabled": True}},
    }
    sections = {"redis": {"url": redis_url, "prefix": redis_prefix}, "cache": {"backend": "redis"}}
    one = await make_gateway([model], sections=sections)
    two = await make_gateway([model], sections=sections)
    async with one.client() as client:
        assert await _headers(client, _ask("What is the capital of France?")) == "miss"
    await wait_until(lambda: one.state.tasks.running("cache-") == 0)  # the background write is done
    async with two.client() as client:
        assert await _headers(client, _ask("Which city is the capital of France?")) == "hit"
        assert await _headers(client, _ask("How do I bake sourdough bread?")) == "miss"
    assert chats(upstream) == 2
    await wait_until(lambda: two.state.tasks.running("cache-") == 0)
    await two.state.pipeline.cache.purge(None, None)  # type: ignore[union-attr]
    redis = two.state.redis
    assert redis is not None
    # Nothing of the cache is left (the replicas' own shared state is not the cache's).
    left = [k async for k in redis.client.scan_iter(match=f"{redis_prefix}*")]
    assert [k for k in left if k.split(b":")[2].startswith(b"cache")] == []


async def test_semantic_vectors_persist_in_sqlite(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path
) -> None:
    upstream = await make_sim()
    model = {
        "name": "m",
        "deployments": [dep(upstream, "a")],
        "cache": {"semantic": {"enabled": True}},
    }
    sections = {"cache": {"backend": "sqlite", "path": str(tmp_path / "c.sqlite3")}}
    first = await make_gateway([model], sections=sections)
    async with first.client() as client:
        assert await _headers(client, _ask("What is the capital of France?")) == "miss"
    await wait_until(lambda: first.state.tasks.running("cache-") == 0)
    await first.state.pipeline.cache.close()  # type: ignore[union-attr]
    second = await make_gateway([model], sections=sections)
    async with second.client() as client:
        assert await _headers(client, _ask("Which city is the capital of France?")) == "hit"
    assert chats(upstream) == 1
