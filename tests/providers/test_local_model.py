"""The local fallback model: SmolLM2-135M-Instruct run in-process, as the last fallback."""

from __future__ import annotations

import pytest

from lockgate.providers.local import DEFAULT_MODEL, resolve_model_path
from tests.conftest import GatewayFactory, SimFactory, dep

pytest.importorskip("llama_cpp", reason="needs the lockgate[local] extra")


def _models(primary: str) -> list[dict[str, object]]:
    return [
        {
            "name": "gpt-4o-mini",
            "deployments": [{"provider": "openai", **_openai(primary)}],
            "fallbacks": ["local"],
        },
        {
            "name": "local",
            "deployments": [{"provider": "local", "model": DEFAULT_MODEL, "max_concurrency": 1}],
        },
    ]


def _openai(api_base: str) -> dict[str, str]:
    from tests.conftest import PROVIDER_KEY

    return {"model": "gpt-4o-mini", "api_base": api_base, "api_key": PROVIDER_KEY}


def test_the_packaged_model_is_found() -> None:
    path = resolve_model_path(DEFAULT_MODEL)
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000


async def test_the_local_model_answers_when_the_provider_is_down(
    make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    sim = await make_sim(error_rates={503: 1.0})
    gw = await make_gateway(_models(dep(sim, "primary")["api_base"]), retry={"retries": 0})
    async with gw.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=12,
            temperature=0,
        )
    reply = raw.parse()
    assert raw.headers["x-lockgate-provider"] == "local"
    assert raw.headers["x-lockgate-fallback"] == "true"
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 5 and 0 < reply.usage.completion_tokens <= 12
    assert sim.statuses[503] == 1


async def test_the_local_model_streams_with_usage(
    make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    sim = await make_sim(error_rates={503: 1.0})
    gw = await make_gateway(_models(dep(sim, "primary")["api_base"]), retry={"retries": 0})
    async with gw.client() as client:
        stream = await client.chat.completions.create(
            model="local",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
        text = ""
        usage = None
        async for chunk in stream:
            usage = chunk.usage or usage
            for choice in chunk.choices:
                text += choice.delta.content or ""
    assert text.strip()
    assert usage is not None and 0 < usage.completion_tokens <= 8 and usage.prompt_tokens > 0


async def test_a_local_model_does_not_embed(
    make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    import openai

    sim = await make_sim()
    gw = await make_gateway(_models(sim.base_url))
    async with gw.client() as client:
        with pytest.raises(openai.BadRequestError, match="does not serve embeddings"):
            await client.embeddings.create(model="local", input="hi")
