"""Provider quirks are data in the profile; checked at the upstream, through the real app."""

from __future__ import annotations

from lockgate.providers.simulator import Simulator
from tests.conftest import GatewayFactory, one_model

HELLO = [{"role": "user", "content": "hello"}]


def _sent(sim: Simulator) -> list[dict]:
    return [r.body for r in sim.requests if r.path.endswith("/chat/completions")]


async def test_mistral_gets_its_own_parameter_names(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    gw = await make_gateway([one_model(simulator.base_url, "mistral-small", provider="mistral")])
    async with gw.client() as client:
        await client.chat.completions.create(
            model="mistral-small", messages=HELLO, max_completion_tokens=7
        )
        stream = await client.chat.completions.create(
            model="mistral-small", messages=HELLO, stream=True
        )
        async for _ in stream:
            pass
    plain, streamed = _sent(simulator)
    assert plain["max_tokens"] == 7
    assert "max_completion_tokens" not in plain
    assert streamed["stream"] is True
    assert "stream_options" not in streamed  # Mistral answers 422 to it


async def test_openai_gets_the_body_as_sent(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    gw = await make_gateway([one_model(simulator.base_url)])
    async with gw.client() as client:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, max_completion_tokens=7
        )
    [sent] = _sent(simulator)
    assert sent["max_completion_tokens"] == 7
    assert "max_tokens" not in sent
