"""Bedrock through the real gateway and the openai SDK, against the simulator's Bedrock wire:
SigV4 signatures (verified by the simulator with botocore), credentials, translation of what
reaches the upstream, embeddings, streaming failures."""

from __future__ import annotations

import base64
from array import array
from typing import Any

import aiohttp
import openai
import pytest

import lockgate.providers.bedrock.client  # noqa: F401  (botocore loads before the loop runs)
from lockgate.providers.simulator import Simulator
from tests.conftest import PROVIDER_KEY, GatewayFactory, SimFactory

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
HELLO: Any = [{"role": "user", "content": "hello"}]


def bedrock(sim: Simulator, model: str = CLAUDE, **extra: Any) -> dict[str, Any]:
    deployment = {
        "provider": "bedrock",
        "model": model,
        "api_base": sim.root_url,
        "region": "eu-west-3",
        "aws_access_key_id": PROVIDER_KEY,
        "aws_secret_access_key": SECRET,
        **extra,
    }
    return {"name": "m", "deployments": [deployment]}


async def test_signed_request_is_verified(
    make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    sim = await make_sim(secret_key=SECRET)
    gw = await make_gateway([bedrock(sim)])
    async with gw.client() as client:
        reply = await client.chat.completions.create(model="m", messages=HELLO)
        stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert reply.choices[0].message.content and streamed
    plain, streaming = sim.requests
    # The model id's ':' travels percent-encoded, and the signature covers that exact path.
    assert plain.path == f"/model/{CLAUDE}/converse"
    assert streaming.path == f"/model/{CLAUDE}/converse-stream"
    auth = plain.headers["Authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={PROVIDER_KEY}/")
    assert "/eu-west-3/bedrock/aws4_request" in auth
    assert SECRET not in str(plain.headers)
    assert sim.statuses == {200: 2}


async def test_wrong_secret_is_refused(make_sim: SimFactory, make_gateway: GatewayFactory) -> None:
    sim = await make_sim(secret_key="another-secret")
    gw = await make_gateway([bedrock(sim)], retry={"retries": 2})
    async with gw.client() as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="m", messages=HELLO)
    body: Any = caught.value.body
    assert caught.value.status_code == 502
    assert body["code"] == "provider_auth_failed"
    assert "signature we calculated does not match" in body["message"]
    assert SECRET not in body["message"]
    assert sim.statuses == {403: 1}  # refused credentials are not retried


async def test_session_token_is_sent_and_signed(
    make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    sim = await make_sim(secret_key=SECRET)
    gw = await make_gateway([bedrock(sim, aws_session_token="FwoGZXIvYXdzEXAMPLE")])
    async with gw.client() as client:
        await client.chat.completions.create(model="m", messages=HELLO)
    [seen] = sim.requests
    assert seen.headers["X-Amz-Security-Token"] == "FwoGZXIvYXdzEXAMPLE"
    assert "x-amz-security-token" in seen.headers["Authorization"]


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> pytest.MonkeyPatch:
    """botocore's default chain, confined: no real files, no instance metadata service."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    return monkeypatch


async def test_default_credential_chain(
    aws_environment: pytest.MonkeyPatch, make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    aws_environment.setenv("AWS_ACCESS_KEY_ID", PROVIDER_KEY)
    aws_environment.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    sim = await make_sim(secret_key=SECRET)
    model = bedrock(sim)
    for name in ("aws_access_key_id", "aws_secret_access_key"):
        del model["deployments"][0][name]
    gw = await make_gateway([model])
    async with gw.client() as client:
        # Resolved once, in a thread (the blockbuster fixture fails any blocking on the loop).
        for _ in range(2):
            await client.chat.completions.create(model="m", messages=HELLO)
    assert sim.statuses == {200: 2}


async def test_no_credentials_anywhere(
    aws_environment: pytest.MonkeyPatch, make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    aws_environment.delenv("AWS_ACCESS_KEY_ID", raising=False)
    aws_environment.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    sim = await make_sim()
    model = bedrock(sim)
    for name in ("aws_access_key_id", "aws_secret_access_key"):
        del model["deployments"][0][name]
    gw = await make_gateway([model])
    async with gw.client() as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="m", messages=HELLO)
    body: Any = caught.value.body
    assert body["code"] == "provider_auth_failed"
    assert "no AWS credentials" in body["message"]
    assert not sim.requests


async def test_what_reaches_bedrock(make_sim: SimFactory, make_gateway: GatewayFactory) -> None:
    sim = await make_sim()
    gw = await make_gateway([bedrock(sim)])
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Look a word up",
                "parameters": {"type": "object", "properties": {"word": {"type": "string"}}},
            },
        }
    ]
    async with gw.client() as client:
        reply = await client.chat.completions.create(
            model="m",
            messages=[{"role": "system", "content": "Be brief."}, *HELLO],
            max_completion_tokens=40,
            temperature=0.2,
            stop="END",
            tools=tools,
            tool_choice="required",
            extra_body={"additionalModelRequestFields": {"top_k": 40}},
        )
    assert reply.choices[0].finish_reason == "tool_calls"
    [seen] = sim.requests
    assert seen.body["system"] == [{"text": "Be brief."}]
    assert seen.body["messages"] == [{"role": "user", "content": [{"text": "hello"}]}]
    assert seen.body["inferenceConfig"] == {
        "maxTokens": 40,
        "temperature": 0.2,
        "stopSequences": ["END"],
    }
    assert seen.body["toolConfig"]["toolChoice"] == {"any": {}}
    assert seen.body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["properties"]
    assert seen.body["additionalModelRequestFields"] == {"top_k": 40}
    assert "model" not in seen.body and "tools" not in seen.body


async def test_embeddings_one_titan_call_per_input(
    make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    sim = await make_sim(secret_key=SECRET, embedding_dim=256)
    gw = await make_gateway([bedrock(sim, model="amazon.titan-embed-text-v2:0")])
    words = [f"word number {i}" for i in range(11)]
    async with gw.client() as client:
        result = await client.embeddings.create(model="m", input=words, dimensions=256)
        packed = await client.embeddings.create(
            model="m", input=words[0], encoding_format="base64", dimensions=256
        )
    assert [d.index for d in result.data] == list(range(11))
    assert all(len(d.embedding) == 256 for d in result.data)
    assert result.usage.prompt_tokens == sum((len(w) + 3) // 4 for w in words)
    raw: Any = packed.data[0].embedding
    decoded = array("f", base64.b64decode(raw)).tolist()  # little-endian float32, as OpenAI's
    assert decoded == pytest.approx(result.data[0].embedding, rel=1e-6)
    bodies = [r.body for r in sim.requests]
    assert len(bodies) == 12
    assert {b["inputText"] for b in bodies[:11]} == set(words)
    assert bodies[0]["dimensions"] == 256
    # Same text, same vector: the order of the concurrent calls did not mix answers up.
    async with gw.client() as client:
        again = await client.embeddings.create(model="m", input=[words[3]], dimensions=256)
    assert again.data[0].embedding == result.data[3].embedding


async def test_embeddings_fail_as_one(make_sim: SimFactory, make_gateway: GatewayFactory) -> None:
    sim = await make_sim(error_rates={429: 1.0})
    gw = await make_gateway(
        [bedrock(sim, model="amazon.titan-embed-text-v2:0")], retry={"retries": 0}
    )
    async with gw.client() as client:
        with pytest.raises(openai.RateLimitError):
            await client.embeddings.create(model="m", input=["a", "b", "c"])


async def test_broken_stream_is_an_error_not_a_short_answer(
    make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    sim = await make_sim(broken_stream_rate=1.0, completion_tokens=20)
    gw = await make_gateway([bedrock(sim)], retry={"retries": 0})
    async with gw.client() as client:
        stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass


async def test_throttling_is_rate_limited(
    make_sim: SimFactory, make_gateway: GatewayFactory
) -> None:
    sim = await make_sim(error_rates={429: 1.0})
    gw = await make_gateway([bedrock(sim)], retry={"retries": 0})
    async with gw.client() as client:
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="m", messages=HELLO)
    assert "ThrottlingException" in str(caught.value)


def test_config_needs_a_region_and_both_keys() -> None:
    from lockgate.config.loader import ConfigError, parse_config

    def problems(deployment: dict[str, Any]) -> str:
        with pytest.raises(ConfigError) as caught:
            parse_config({"models": [{"name": "m", "deployments": [deployment]}]}, env={})
        return str(caught.value)

    assert "region: required for provider bedrock" in problems(
        {"provider": "bedrock", "model": "x"}
    )
    assert "api_key: not used by provider bedrock" in problems(
        {"provider": "bedrock", "model": "x", "region": "us-east-1", "api_key": "k"}
    )
    assert "give both or neither" in problems(
        {"provider": "bedrock", "model": "x", "region": "us-east-1", "aws_access_key_id": "AKIA"}
    )


async def test_simulator_refuses_unsigned_requests(simulator: Simulator) -> None:
    url = f"{simulator.root_url}/model/{CLAUDE}/converse"
    body = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers={"Authorization": f"Bearer {PROVIDER_KEY}"}) as resp,
    ):
        answer = await resp.json()
    assert resp.status == 403
    assert resp.headers["x-amzn-ErrorType"].startswith("UnrecognizedClientException:")
    assert answer == {"message": "The security token included in the request is invalid."}
