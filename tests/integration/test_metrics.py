"""/metrics as Prometheus scrapes it, after real traffic through the gateway."""

from __future__ import annotations

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lockgate.core.retry import MAX_REQUEUES
from lockgate.providers.simulator import Simulator, SimulatorOptions
from tests.conftest import MASTER_KEY, PROVIDER_KEY, Gateway

HELLO = [{"role": "user", "content": "hello"}]


async def _scrape(gateway: Gateway) -> tuple[str, dict[str, dict[tuple, float]]]:
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return text, samples


async def test_metrics_after_traffic(
    gateway: Gateway, client: openai.AsyncOpenAI, simulator: Simulator
) -> None:
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    async for _ in stream:
        pass
    simulator.options = SimulatorOptions(api_key=PROVIDER_KEY, error_rates={429: 1.0})
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="no-such-model", messages=HELLO)

    text, samples = await _scrape(gateway)

    def value(name: str, **labels: str) -> float:
        return samples[name][tuple(sorted(labels.items()))]

    chat = {"endpoint": "chat", "model": "gpt-4o-mini"}
    dep = {"model": "gpt-4o-mini", "deployment": "openai/gpt-4o-mini"}
    assert value("lockgate_requests_total", **chat, outcome="ok") == 2
    assert value("lockgate_requests_total", **chat, outcome="rate_limited") == 1
    assert value("lockgate_requests_total", endpoint="chat", model="", outcome="not_found") == 1
    assert value("lockgate_errors_total", **chat, kind="rate_limited") == 1
    assert value("lockgate_request_duration_seconds_count", **chat) == 3
    assert value("lockgate_time_to_first_token_seconds_count", **dep) == 1
    assert value("lockgate_upstream_duration_seconds_count", **dep, outcome="ok") == 2
    # The 429 (retry-after 1 s) was waited out in the admission queue (MAX_REQUEUES times),
    # then as a retry, before the client saw it.
    limited = value("lockgate_upstream_duration_seconds_count", **dep, outcome="rate_limited")
    assert limited == 2 + MAX_REQUEUES
    assert (
        value("lockgate_circuit_transitions_total", deployment=dep["deployment"], state="open") >= 1
    )
    assert value("lockgate_tokens_total", **dep, type="completion") > 0
    assert value("lockgate_tokens_total", **dep, type="prompt") > 0
    assert value("lockgate_in_flight_requests") == 0
    # Nothing secret, and no client-chosen label values (the unknown model is not a label).
    assert MASTER_KEY not in text and PROVIDER_KEY not in text
    assert "no-such-model" not in text
