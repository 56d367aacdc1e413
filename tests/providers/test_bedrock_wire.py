"""Bedrock translation against documented wire examples: requests, answers, stream events
(encoded by the simulator, decoded by botocore), usage with cache tokens, error types."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import botocore.session
import orjson
import pytest
from aiohttp.test_utils import make_mocked_request
from botocore.eventstream import EventStreamBuffer

from lockgate.core import errors
from lockgate.core.types import Chunk, Usage
from lockgate.providers.bedrock import embeddings
from lockgate.providers.bedrock.auth import Signer
from lockgate.providers.bedrock.client import Bedrock
from lockgate.providers.bedrock.errors import error_from_response
from lockgate.providers.bedrock.request import converse_body
from lockgate.providers.bedrock.response import chat_completion
from lockgate.providers.bedrock.stream import StreamTranslator, stream_chunks
from lockgate.providers.http import HttpPool
from lockgate.providers.simulator import sigv4
from lockgate.providers.simulator.bedrock_request import chat_body_from_converse
from lockgate.providers.simulator.bedrock_wire import signature_parts
from lockgate.providers.simulator.eventstream import event, exception
from tests.providers.replay import example


def doc(name: str) -> Any:
    return orjson.loads(example(f"bedrock/{name}"))


def test_request_with_tools_matches_the_documented_body() -> None:
    assert converse_body(doc("openai_tool_request.json")) == doc("converse_tool_request.json")


def test_tool_result_conversation_matches_the_documented_body() -> None:
    assert converse_body(doc("openai_tool_result.json")) == doc("converse_tool_result.json")


def test_simulator_reads_the_documented_request_back() -> None:
    """Both directions: the simulator's reading of the Converse body is the OpenAI request."""
    back = chat_body_from_converse(doc("converse_tool_result.json"), "m", stream=False)
    roles = [m["role"] for m in back["messages"]]
    assert roles == ["user", "assistant", "tool", "user"]
    assert back["messages"][1]["tool_calls"][0]["function"]["name"] == "top_song"
    assert orjson.loads(back["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {
        "sign": "WZPZ"
    }
    assert back["messages"][2]["tool_call_id"] == "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"


def test_tool_use_answer() -> None:
    body = chat_completion(doc("converse_tool_use.json"), "claude", "chatcmpl-1", 1)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["id"] == "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"
    assert call["function"]["name"] == "top_song"
    assert orjson.loads(call["function"]["arguments"]) == {"sign": "WZPZ"}
    assert choice["message"]["content"] is None
    assert body["usage"]["prompt_tokens"] == 375
    assert body["usage"]["total_tokens"] == 431


def test_cache_reads_and_writes_are_part_of_the_prompt() -> None:
    body = chat_completion(doc("converse_text_cached.json"), "claude", "chatcmpl-1", 1)
    usage = body["usage"]
    assert usage["prompt_tokens"] == 12 + 1500 + 1000
    assert usage["total_tokens"] == 2531  # Bedrock's own total agrees
    assert usage["prompt_tokens_details"] == {"cached_tokens": 1500, "cache_creation_tokens": 1000}
    assert Usage.from_openai(usage) == Usage(2512, 19, 1500, 1000, 0)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"].startswith("The most popular song")


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
    ],
)
def test_stop_reasons(stop: str, finish: str) -> None:
    data = {"output": {"message": {"content": [{"text": "x"}]}}, "stopReason": stop}
    assert chat_completion(data, "m", "c", 1)["choices"][0]["finish_reason"] == finish


def _encoded(events: list[Any]) -> bytes:
    return b"".join(event(kind, orjson.dumps(payload)) for kind, payload in events)


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def _translate(data: bytes, size: int = 7) -> list[Chunk]:
    translator = StreamTranslator("chatcmpl-1", "claude", 1)
    return [chunk async for chunk in stream_chunks(_pieces(data, size), translator)]


def test_simulator_encoding_decodes_with_botocore() -> None:
    events = doc("stream_tool_use.json")
    buffer = EventStreamBuffer()
    buffer.add_data(_encoded(events))
    decoded = [
        [m.headers[":event-type"], orjson.loads(m.payload), m.headers[":message-type"]]
        for m in buffer
    ]
    assert decoded == [[kind, payload, "event"] for kind, payload in events]


async def test_streamed_tool_call() -> None:
    chunks = await _translate(_encoded(doc("stream_tool_use.json")))
    deltas = [c.data["choices"][0]["delta"] for c in chunks if c.data["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": "Let me look that up."}
    assert deltas[2]["tool_calls"][0] == {
        "index": 0,
        "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
        "type": "function",
        "function": {"name": "top_song", "arguments": ""},
    }
    arguments = "".join(
        d["tool_calls"][0]["function"]["arguments"] for d in deltas[2:] if "tool_calls" in d
    )
    assert orjson.loads(arguments) == {"sign": "WZPZ"}
    assert all(d["tool_calls"][0]["index"] == 0 for d in deltas[2:] if "tool_calls" in d)
    assert chunks[-2].data["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1].is_usage_only
    assert chunks[-1].data["usage"]["completion_tokens"] == 56


async def test_streamed_text_with_cached_usage() -> None:
    chunks = await _translate(_encoded(doc("stream_text.json")), size=3)
    text = "".join(
        c.data["choices"][0]["delta"].get("content", "") for c in chunks if c.data["choices"]
    )
    assert text == "The most popular song on WZPZ is Elemental Hotel."
    assert chunks[-2].data["choices"][0]["finish_reason"] == "length"
    assert chunks[-1].data["usage"]["prompt_tokens"] == 12 + 2500
    assert chunks[-1].data["usage"]["prompt_tokens_details"]["cached_tokens"] == 2500


@pytest.mark.parametrize(
    ("exception_type", "kind"),
    [
        ("throttlingException", errors.RateLimited),
        ("serviceUnavailableException", errors.Overloaded),
        ("modelStreamErrorException", errors.UpstreamError),
        ("internalServerException", errors.UpstreamError),
        ("validationException", errors.BadRequest),
    ],
)
async def test_stream_exception_events(exception_type: str, kind: type[Exception]) -> None:
    events = doc("stream_text.json")[:2]
    data = _encoded(events) + exception(exception_type, b'{"message":"stream trouble"}')
    with pytest.raises(kind) as caught:
        await _translate(data)
    assert "stream trouble" in str(caught.value)


async def test_stream_cut_before_message_stop_is_an_error() -> None:
    events = doc("stream_text.json")[:3]
    with pytest.raises(errors.UpstreamError, match="ended before it was complete"):
        await _translate(_encoded(events))


async def test_corrupted_stream_is_an_upstream_error() -> None:
    data = bytearray(_encoded(doc("stream_text.json")))
    data[20] ^= 0xFF  # inside the first message: its CRC no longer matches
    with pytest.raises(errors.UpstreamError, match="malformed event stream"):
        await _translate(bytes(data))


@pytest.mark.parametrize(
    "case", doc("errors.json"), ids=lambda c: f"{c['status']}-{c['message'][:24]}"
)
def test_documented_errors(case: dict[str, Any]) -> None:
    body = orjson.dumps({"message": case["message"]})
    err = error_from_response(case["status"], body, {"x-amzn-ErrorType": case["type"]}, secrets=[])
    assert err.kind == case["kind"]
    assert case["message"] in err.message


def test_error_type_from_the_body_when_no_header() -> None:
    body = b'{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"bad"}'
    assert isinstance(error_from_response(403, body, {}, secrets=[]), errors.ProviderAuthError)


def test_secrets_never_reach_an_error() -> None:
    body = orjson.dumps({"message": "signature for key s3cr3t-value is wrong"})
    err = error_from_response(
        403, body, {"x-amzn-ErrorType": "InvalidSignatureException"}, secrets=["s3cr3t-value"]
    )
    assert "s3cr3t-value" not in err.message


def test_titan_embedding_answer() -> None:
    values, tokens = embeddings.vector(doc("titan_embedding.json"))
    body = embeddings.embeddings_body([(values, tokens)], {"input": "hello"}, "titan")
    assert body["data"][0]["embedding"] == [0.0123, -0.0456, 0.0789, 0.0321]
    assert body["usage"] == {"prompt_tokens": 6, "total_tokens": 6}
    assert embeddings.invoke_body("hello", {"dimensions": 256}) == {
        "inputText": "hello",
        "dimensions": 256,
    }


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "'n' must be 1"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                    }
                ]
            },
            "as bytes",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "not supported"),
        ({"messages": []}, "non-empty"),
    ],
)
def test_requests_bedrock_cannot_take(body: dict[str, Any], problem: str) -> None:
    with pytest.raises(errors.BadRequest, match=problem):
        converse_body(body)


def test_alternation_images_and_passthrough() -> None:
    body = converse_body(
        {
            "messages": [
                {"role": "user", "content": "one"},
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,AAAA"}}
                    ],
                },
                {"role": "assistant", "content": "ok"},
            ],
            "tool_choice": "none",
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "guardrailConfig": {"guardrailIdentifier": "g1", "guardrailVersion": "1"},
        }
    )
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
    assert body["messages"][0]["content"] == [
        {"text": "one"},
        {"image": {"format": "jpeg", "source": {"bytes": "AAAA"}}},
    ]
    assert "toolConfig" not in body  # tool_choice "none" and no tool blocks yet
    assert body["guardrailConfig"] == {"guardrailIdentifier": "g1", "guardrailVersion": "1"}


def test_required_tool_choice_is_any() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    body = converse_body(
        {"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": "required"}
    )
    assert body["toolConfig"]["toolChoice"] == {"any": {}}
    auto = converse_body(
        {"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": "auto"}
    )
    assert "toolChoice" not in auto["toolConfig"]


async def test_exception_before_any_content_fails_the_first_chunk() -> None:
    """Nothing is handed out before the model produced something: a retry is still possible."""
    data = _encoded(doc("stream_text.json")[:1]) + exception("throttlingException", b"{}")
    translator = StreamTranslator("chatcmpl-1", "claude", 1)
    stream = stream_chunks(_pieces(data, 1000), translator)
    with pytest.raises(errors.RateLimited):
        await stream.__anext__()


class _Captured(Exception):
    pass


def test_same_url_as_botocores_client_and_its_signature_verifies() -> None:
    """botocore's own bedrock-runtime client, stopped before sending: lockgate builds the same
    URL (the model id's ':' percent-encoded), and the simulator's verifier accepts its
    signature (so it checks real SigV4, not just lockgate's)."""
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    model = "anthropic.claude-3-5-sonnet-20240620-v1:0"
    client = botocore.session.get_session().create_client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=secret,
    )
    sent: list[Any] = []

    def before_send(request: Any, **_: Any) -> None:
        sent.append(request)
        raise _Captured

    client.meta.events.register("before-send.bedrock-runtime.Converse", before_send)
    with pytest.raises(_Captured):
        client.converse(modelId=model, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    [request] = sent
    ours = Bedrock(
        api_base="https://bedrock-runtime.us-east-1.amazonaws.com",
        signer=Signer("us-east-1"),
        http=HttpPool(),
        timeout=1,
        connect_timeout=1,
        max_connections=1,
        headers={},
    )._url(model, "converse")
    assert request.url == ours
    raw_path = request.url.removeprefix("https://bedrock-runtime.us-east-1.amazonaws.com")
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    headers["Host"] = "bedrock-runtime.us-east-1.amazonaws.com"
    incoming = make_mocked_request("POST", raw_path, headers=headers)
    parts = signature_parts(incoming)
    assert parts is not None and parts["key"] == "AKIDEXAMPLE"
    assert sigv4.check(incoming, request.body, parts, secret) is None
    assert sigv4.check(incoming, request.body, parts, "not-the-secret") is not None
    assert sigv4.check(incoming, request.body + b" ", parts, secret) is not None


def test_tool_history_without_tools_declares_them() -> None:
    body = doc("openai_tool_result.json")
    del body["tools"]
    config = converse_body(body)["toolConfig"]
    assert config == {
        "tools": [{"toolSpec": {"name": "top_song", "inputSchema": {"json": {"type": "object"}}}}]
    }
