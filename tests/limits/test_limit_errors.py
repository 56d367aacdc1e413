"""What a client sees of a refusal: the errors through the gateway's real error path and
the official SDK, and the engines' series on /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import openai
import pytest
from aiohttp import web

from lockgate.api.middleware import gateway_middleware
from lockgate.core.errors import GatewayError
from lockgate.features.budgets import Budget, LocalBudgets
from lockgate.features.ratelimit import LocalRateLimiter, RateLimit
from tests.conftest import HELLO, GatewayFactory
from tests.limits.conftest import Clock

Raiser = Callable[[], Awaitable[None]]


@pytest.fixture
async def edge() -> AsyncIterator[tuple[str, list[Raiser], list[int]]]:
    """An app with the gateway's middleware whose chat route raises what the test gives it
    (the engines are not in the pipeline yet; this is the path their errors will take)."""
    raisers: list[Raiser] = []
    calls: list[int] = []

    async def chat(request: web.Request) -> web.Response:
        calls.append(1)
        await raisers[0]()
        return web.json_response({})

    app = web.Application(middlewares=[gateway_middleware])
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1", raisers, calls
    await runner.cleanup()


async def test_a_rate_limited_request_is_an_openai_429(
    edge: tuple[str, list[Raiser], list[int]], clock: Clock
) -> None:
    url, raisers, _ = edge
    limiter = LocalRateLimiter(clock=clock)
    limits = [RateLimit("key", "k1", rpm=1, tpm=1000)]
    await limiter.check(limits, tokens=100)

    async def second() -> None:
        await limiter.check(limits, tokens=100)

    raisers.append(second)
    async with openai.AsyncOpenAI(base_url=url, api_key="k", max_retries=0) as client:
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="m", messages=HELLO)  # type: ignore[arg-type]
    response = info.value.response
    assert response.status_code == 429
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.type == "requests"
    headers = response.headers
    assert headers["retry-after"] == "60"
    assert headers["retry-after-ms"] == "60000"
    assert headers["x-ratelimit-limit-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "1m0s"
    assert headers["x-ratelimit-limit-tokens"] == "1000"
    assert headers["x-ratelimit-remaining-tokens"] == "900"
    assert headers["x-ratelimit-reset-tokens"] == "6s"
    assert "x-request-id" in headers


async def test_a_budget_refusal_is_a_429_the_sdk_does_not_retry(
    edge: tuple[str, list[Raiser], list[int]],
) -> None:
    url, raisers, calls = edge
    budgets = LocalBudgets()
    budget = Budget("team", "t1", limit=100, period="monthly")

    async def over() -> None:
        await budgets.reserve([budget], 101)

    raisers.append(over)
    async with openai.AsyncOpenAI(base_url=url, api_key="k", max_retries=3) as client:
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="m", messages=HELLO)  # type: ignore[arg-type]
    assert info.value.code == "budget_exceeded"
    assert info.value.type == "insufficient_quota"
    assert "Budget exceeded for this team" in info.value.message
    assert len(calls) == 1  # x-should-retry: false, so the SDK did not try again


async def test_other_errors_carry_no_limit_headers(
    edge: tuple[str, list[Raiser], list[int]],
) -> None:
    url, raisers, _ = edge

    async def fail() -> None:
        raise GatewayError("boom")

    raisers.append(fail)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/chat/completions", json={}) as response,
    ):
        assert response.status == 500
        assert not [h for h in response.headers if h.startswith("x-ratelimit")]


async def test_limit_series_on_metrics_without_ids(
    make_gateway: GatewayFactory, clock: Clock
) -> None:
    gw = await make_gateway([])
    series = gw.state.metrics.limits
    budgets = LocalBudgets(metrics=series, clock=clock)
    budget = Budget("team", "team-secret-name", limit=100, period="daily", alerts=(0.8,))
    await budgets.settle(await budgets.reserve([budget], 90), 90)
    limiter = LocalRateLimiter(metrics=series, clock=clock)
    await limiter.check([RateLimit("key", "key-id-123", rpm=1)])
    with pytest.raises(GatewayError):
        await limiter.check([RateLimit("key", "key-id-123", rpm=1)])
    async with aiohttp.ClientSession() as session, session.get(f"{gw.url}/metrics") as resp:
        text = await resp.text()
    assert 'lockgate_budget_alerts_total{scope="team",threshold="0.8"} 1.0' in text
    assert 'lockgate_rate_limited_total{limit="rpm",scope="key"} 1.0' in text
    assert "team-secret-name" not in text and "key-id-123" not in text
