"""A client that hangs up cancels its upstream call: nobody pays for tokens no one reads."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from lockgate.providers.simulator import Simulator, SimulatorOptions
from tests.conftest import MASTER_KEY, PROVIDER_KEY, Gateway, wait_until

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a long story"}]}


async def test_disconnect_mid_stream_cancels_upstream(
    gateway: Gateway, simulator: Simulator
) -> None:
    simulator.options = SimulatorOptions(api_key=PROVIDER_KEY, inter_token="50ms", stream_chunks=60)
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{gateway.url}/v1/chat/completions", json={**BODY, "stream": True}, headers=headers
        )
        assert resp.status == 200
        first = await resp.content.readline()
        assert first.startswith(b"data: ")
        resp.close()  # hang up after the first event
    await wait_until(lambda: simulator.disconnects == 1)
    await wait_until(lambda: gateway.state.metrics.in_flight == 0)
    assert simulator.statuses[200] == 1


async def test_disconnect_while_waiting_cancels_upstream(
    gateway: Gateway, simulator: Simulator
) -> None:
    simulator.options = SimulatorOptions(api_key=PROVIDER_KEY, latency="600ms")
    async with gateway.client(timeout=0.2) as client:
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(**BODY)  # type: ignore[call-overload]
    await wait_until(lambda: simulator.disconnects == 1)
