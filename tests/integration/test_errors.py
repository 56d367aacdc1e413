"""Every error a client can meet, in OpenAI's wire format, with the right status."""

from __future__ import annotations

import socket

import aiohttp
import openai
import pytest

from lockgate.providers.simulator import Simulator, SimulatorOptions
from tests.conftest import MASTER_KEY, PROVIDER_KEY, Gateway, GatewayFactory, one_model

HELLO = [{"role": "user", "content": "hello"}]


async def _post(gateway: Gateway, body: bytes, key: str | None = MASTER_KEY) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{gateway.url}/v1/chat/completions", data=body, headers=headers) as resp,
    ):
        assert resp.headers["x-request-id"]
        return resp.status, await resp.json()


def _assert_openai_error(body: dict) -> dict:
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    return err


async def test_malformed_json_is_400(gateway: Gateway) -> None:
    status, body = await _post(gateway, b'{"model": "gpt-4o-mini", "messages": [')
    assert status == 400
    err = _assert_openai_error(body)
    assert err["type"] == "invalid_request_error"
    assert "parse the JSON" in err["message"]


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b'{"messages": [{"role": "user"}]}', "model", "missing_required_parameter"),
        (b'{"model": "gpt-4o-mini"}', "messages", "missing_required_parameter"),
        (b'{"model": "gpt-4o-mini", "messages": []}', "messages", "invalid_value"),
        (b'{"model": 5, "messages": [{"role": "user"}]}', "model", "invalid_type"),
        (b'{"model": "gpt-4o-mini", "messages": [{"content": "x"}]}', "messages[0].role",
         "missing_required_parameter"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "max_tokens": 0}',
         "max_tokens", "invalid_value"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "stream": "yes"}',
         "stream", "invalid_type"),
        (b"[1, 2]", None, "invalid_type"),
    ],
)  # fmt: skip
async def test_invalid_fields_name_their_param(
    gateway: Gateway, simulator: Simulator, body: bytes, param: str | None, code: str
) -> None:
    status, payload = await _post(gateway, body)
    assert status == 400
    err = _assert_openai_error(payload)
    assert err["param"] == param
    assert err["code"] == code
    assert simulator.requests == []


async def test_unknown_model_is_404_listing_models(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="gpt-99", messages=HELLO)
    err = info.value.body
    assert isinstance(err, dict)
    assert err["code"] == "model_not_found"
    assert "gpt-4o-mini" in err["message"] and "text-embedding-3-small" in err["message"]


@pytest.mark.parametrize("key", ["wrong-key", None])
async def test_wrong_or_missing_key_is_401(gateway: Gateway, key: str | None) -> None:
    status, body = await _post(gateway, b'{"model": "gpt-4o-mini", "messages": []}', key=key)
    assert status == 401
    err = _assert_openai_error(body)
    assert err["type"] == "authentication_error"
    async with gateway.client(api_key="wrong-key") as bad:
        with pytest.raises(openai.AuthenticationError):
            await bad.models.list()


async def test_body_over_limit_is_413(make_gateway: GatewayFactory, simulator: Simulator) -> None:
    gw = await make_gateway([one_model(simulator.base_url)], max_body_bytes=2048)
    async with gw.client() as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 5000}]
            )
    assert info.value.status_code == 413
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "request_too_large"
    assert simulator.requests == []


async def test_upstream_429_is_429_with_retry_after(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    simulator.options = SimulatorOptions(api_key=PROVIDER_KEY, error_rates={429: 1.0})
    gw = await make_gateway([{**one_model(simulator.base_url), "retries": 0}])
    async with gw.client() as client:
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert info.value.response.headers["retry-after"] == "1"
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "rate_limit_exceeded"


async def test_advertised_limit_is_respected_before_sending(
    client: openai.AsyncOpenAI, simulator: Simulator
) -> None:
    simulator.options = SimulatorOptions(api_key=PROVIDER_KEY, rpm=1)
    await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    # The upstream said 1 request a minute: the second was never sent to collect a 429.
    assert simulator.statuses[429] == 0
    assert sum(simulator.statuses.values()) == 1
    assert 50 <= int(info.value.response.headers["retry-after"]) <= 61
    assert isinstance(info.value.body, dict)
    assert info.value.body["code"] == "upstream_capacity_exceeded"


@pytest.mark.parametrize(("status", "expected"), [(500, 502), (503, 503)])
async def test_upstream_5xx_maps(
    client: openai.AsyncOpenAI, simulator: Simulator, status: int, expected: int
) -> None:
    simulator.options = SimulatorOptions(api_key=PROVIDER_KEY, error_rates={status: 1.0})
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert info.value.status_code == expected
    assert info.value.response.headers["x-lockgate-deployment"] == "openai/gpt-4o-mini"


async def test_upstream_down_is_502(make_gateway: GatewayFactory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gw = await make_gateway([one_model(f"http://127.0.0.1:{port}/v1")])
    async with gw.client() as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert info.value.status_code == 502
    assert "cannot connect" in info.value.message


async def test_upstream_timeout_is_504(make_gateway: GatewayFactory, simulator: Simulator) -> None:
    simulator.options = SimulatorOptions(api_key=PROVIDER_KEY, latency="2000ms")
    gw = await make_gateway([one_model(simulator.base_url, timeout=0.3)])
    async with gw.client() as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert info.value.status_code == 504
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "timeout_error"


async def test_bad_provider_key_never_leaks(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    leaked = "sk-wrong-provider-key-zyxwvutsrqponm"
    gw = await make_gateway([one_model(simulator.base_url, api_key=leaked)])
    async with gw.client() as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert info.value.status_code == 502
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "provider_auth_failed"
    assert leaked not in info.value.response.text
    assert leaked[:12] not in info.value.response.text
    assert leaked not in gw.state.metrics.render().decode()


async def test_context_window_is_400(client: openai.AsyncOpenAI, simulator: Simulator) -> None:
    simulator.options = SimulatorOptions(api_key=PROVIDER_KEY, context_window=50)
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "word " * 400}]
        )
    assert isinstance(info.value.body, dict)
    assert info.value.body["code"] == "context_length_exceeded"


async def test_stream_broken_after_start_ends_with_error_event(
    client: openai.AsyncOpenAI, simulator: Simulator
) -> None:
    simulator.options = SimulatorOptions(
        api_key=PROVIDER_KEY, broken_stream_rate=1.0, stream_chunks=20
    )
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    received: list[object] = []

    async def consume() -> None:
        async for chunk in stream:
            received.append(chunk)

    with pytest.raises(openai.APIError) as info:
        await consume()
    assert received
    assert "upstream" in info.value.message


async def test_stream_error_before_first_chunk_is_plain_error(
    client: openai.AsyncOpenAI, simulator: Simulator
) -> None:
    simulator.options = SimulatorOptions(api_key=PROVIDER_KEY, error_rates={500: 1.0})
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    assert info.value.status_code == 502


async def test_unknown_path_is_openai_shaped_404(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}/v1/nothing") as resp:
        assert resp.status == 404
        _assert_openai_error(await resp.json())
