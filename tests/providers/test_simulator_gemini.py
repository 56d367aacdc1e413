"""The simulator's Gemini wire spoken to directly over HTTP: routes, keys, answers, streams,
errors, and the requests it refuses as the Gemini API does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from lockgate.providers.simulator import Simulator, SimulatorOptions

KEY = "AIzaSySimulatorKey0123456789abcdef"
HELLO = {"contents": [{"role": "user", "parts": [{"text": "Hello there"}]}]}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    options = SimulatorOptions(api_key=KEY, seed=1, completion_tokens=6, context_window=50)
    async with Simulator(options) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, sim: Simulator, path: str, body: Any, key: str | None = KEY
) -> tuple[int, Any, str]:
    headers = {"x-goog-api-key": key} if key is not None else {}
    async with http.post(f"{sim.root_url}{path}", json=body, headers=headers) as resp:
        raw = await resp.read()
        kind = resp.headers["Content-Type"]
        return resp.status, (orjson.loads(raw) if "json" in kind else raw.decode()), kind


async def test_generate_content(sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, body, _ = await post(http, sim, "/v1beta/models/gemini-x:generateContent", HELLO)
    assert status == 200
    candidate = body["candidates"][0]
    assert candidate["content"]["role"] == "model" and candidate["finishReason"] == "STOP"
    assert "index" not in candidate  # proto3 JSON leaves a zero index out
    usage = body["usageMetadata"]
    assert usage["candidatesTokenCount"] == 6
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + 6
    assert body["modelVersion"] == "gemini-x" and body["responseId"]


async def test_key_in_the_query(sim: Simulator, http: aiohttp.ClientSession) -> None:
    path = f"/v1beta/models/gemini-x:generateContent?key={KEY}"
    assert (await post(http, sim, path, HELLO, key=None))[0] == 200
    status, body, _ = await post(http, sim, "/v1beta/models/gemini-x:generateContent", HELLO, None)
    assert status == 403 and body["error"]["status"] == "PERMISSION_DENIED"
    status, body, _ = await post(http, sim, "/v1beta/models/g:generateContent", HELLO, "AIzaWrong")
    assert status == 400 and body["error"]["details"][0]["reason"] == "API_KEY_INVALID"


async def test_stream_is_sse_of_responses(sim: Simulator, http: aiohttp.ClientSession) -> None:
    path = "/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
    status, text, kind = await post(http, sim, path, HELLO)
    assert status == 200 and kind.startswith("text/event-stream")
    events = [orjson.loads(block[6:]) for block in text.split("\r\n\r\n") if block]
    assert len(events) == 6
    assert all("finishReason" not in e["candidates"][0] for e in events[:-1])
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "candidatesTokenCount" not in events[0]["usageMetadata"]
    assert events[-1]["usageMetadata"]["candidatesTokenCount"] == 6
    status, body, _ = await post(http, sim, path.removesuffix("?alt=sse"), HELLO)
    assert status == 400 and "alt=sse" in body["error"]["message"]


async def test_refuses_what_gemini_refuses(sim: Simulator, http: aiohttp.ClientSession) -> None:
    path = "/v1beta/models/gemini-x:generateContent"
    status, body, _ = await post(http, sim, path, {**HELLO, "messages": []})
    assert status == 400
    assert body["error"] == {
        "code": 400,
        "message": 'Invalid JSON payload received. Unknown name "messages": Cannot find field.',
        "status": "INVALID_ARGUMENT",
    }
    tool = {
        "functionDeclarations": [
            {
                "name": "f",
                "parameters": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}},
                    "additionalProperties": False,
                },
            }
        ]
    }
    status, body, _ = await post(http, sim, path, {**HELLO, "tools": [tool]})
    assert status == 400 and '"additionalProperties"' in body["error"]["message"]
    bad_role = {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}
    status, body, _ = await post(http, sim, path, bad_role)
    assert body["error"]["message"] == "Please use a valid role: user, model."


async def test_faults_in_gemini_words(sim: Simulator, http: aiohttp.ClientSession) -> None:
    path = "/v1beta/models/gemini-x:generateContent"
    long = {"contents": [{"role": "user", "parts": [{"text": "word " * 200}]}]}
    status, body, _ = await post(http, sim, path, long)
    assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    assert "exceeds the maximum number of tokens allowed (50)" in body["error"]["message"]
    for code, name in ((503, "UNAVAILABLE"), (500, "INTERNAL"), (429, "RESOURCE_EXHAUSTED")):
        sim.options = sim.options.model_copy(update={"error_rates": {code: 1.0}})
        status, body, _ = await post(http, sim, path, HELLO)
        assert status == code and body["error"]["status"] == name
    retry = body["error"]["details"][-1]
    assert retry == {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}


async def test_embeddings(sim: Simulator, http: aiohttp.ClientSession) -> None:
    batch = {
        "requests": [
            {"model": "models/emb", "content": {"parts": [{"text": t}]}} for t in ("a", "b")
        ]
    }
    status, body, _ = await post(http, sim, "/v1beta/models/emb:batchEmbedContents", batch)
    assert status == 200 and len(body["embeddings"]) == 2
    single = {"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 3}
    status, one, _ = await post(http, sim, "/v1beta/models/emb:embedContent", single)
    assert status == 200 and len(one["embedding"]["values"]) == 3
    wrong = {"requests": [{"model": "models/other", "content": {"parts": [{"text": "a"}]}}]}
    status, body, _ = await post(http, sim, "/v1beta/models/emb:batchEmbedContents", wrong)
    assert status == 400 and "does not match" in body["error"]["message"]
