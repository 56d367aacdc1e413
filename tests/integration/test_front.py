"""lockgate's own HTTP/1.1 front, byte by byte on a raw socket: what the SDKs never do
(pipelining, HTTP/1.0, Expect: 100-continue, malformed requests) and the handing over of a
connection to aiohttp for the routes beyond the API endpoints."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools
import orjson
import pytest
from aiohttp import web

from lockgate.api.front.exchange import response_head
from lockgate.api.front.site import FrontSite
from lockgate.app import build_app
from lockgate.config.loader import parse_config
from lockgate.providers.simulator import Simulator, SimulatorOptions
from tests.conftest import MASTER_KEY, PROVIDER_KEY, Gateway, GatewayFactory, one_model

CHAT = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


def post(body: bytes = CHAT, *, version: str = "1.1", extra: str = "") -> bytes:
    return (
        f"POST /v1/chat/completions HTTP/{version}\r\nHost: x\r\n"
        f"Authorization: Bearer {MASTER_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {MASTER_KEY}\r\n\r\n".encode()


@dataclass
class Answer:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class Reader:
    """Responses off a raw connection, parsed by httptools."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._parser = httptools.HttpResponseParser(self)
        self.done: list[Answer] = []
        self._current = Answer()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._current.headers[name.decode().lower()] = value.decode()

    def on_headers_complete(self) -> None:
        self._current.status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._current.body += body

    def on_message_complete(self) -> None:
        self.done.append(self._current)
        self._current = Answer()

    async def answers(self, count: int) -> list[Answer]:
        while len(self.done) < count:
            data = await asyncio.wait_for(self._reader.read(65536), 10)
            if not data:  # the end of a body that runs until the connection's end
                if self._current.status:
                    self.done.append(self._current)
                break
            self._parser.feed_data(data)
        return self.done

    async def closed(self) -> bool:
        return await asyncio.wait_for(self._reader.read(1), 10) == b""


async def connect(gateway: Gateway) -> tuple[Reader, asyncio.StreamWriter]:
    url = urlsplit(gateway.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    return Reader(reader), writer


async def test_one_connection_goes_on_to_operator_routes_and_back(gateway: Gateway) -> None:
    reader, writer = await connect(gateway)
    writer.write(post())
    (first,) = await reader.answers(1)
    assert first.status == 200 and first.headers["x-lockgate-deployment"]
    writer.write(get("/health/live"))  # aiohttp's from here on
    writer.write(post())
    second, third = (await reader.answers(3))[1:]
    assert second.status == 200 and orjson.loads(second.body)["status"] == "ok"
    assert third.status == 200 and orjson.loads(third.body)["object"] == "chat.completion"
    assert third.headers["x-request-id"] != first.headers["x-request-id"]
    writer.close()


async def test_pipelined_requests_are_answered_in_order(gateway: Gateway) -> None:
    reader, writer = await connect(gateway)
    ids = [f"req-pipelined-{i}" for i in range(3)]
    writer.write(b"".join(post(extra=f"x-request-id: {i}\r\n") for i in ids))
    answers = await reader.answers(3)
    assert [a.status for a in answers] == [200, 200, 200]
    assert [a.headers["x-request-id"] for a in answers] == ids
    writer.close()


async def test_an_operator_request_pipelined_behind_an_api_call_is_refused(
    gateway: Gateway,
) -> None:
    reader, writer = await connect(gateway)
    writer.write(post() + get("/health/live"))
    first, second = await reader.answers(2)
    assert first.status == 200
    assert second.status == 400 and second.headers["connection"] == "close"
    assert orjson.loads(second.body)["error"]["code"] == "pipelined_request"
    assert await reader.closed()
    writer.close()


async def test_expect_100_continue(gateway: Gateway) -> None:
    reader, writer = await connect(gateway)
    head, body = post(extra="Expect: 100-continue\r\n").split(b"\r\n\r\n", 1)
    writer.write(head + b"\r\n\r\n")
    interim = await asyncio.wait_for(reader._reader.readuntil(b"\r\n\r\n"), 10)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    (answer,) = await reader.answers(1)
    assert answer.status == 200
    writer.close()


async def test_an_http_1_0_stream_ends_with_the_connection(gateway: Gateway) -> None:
    reader, writer = await connect(gateway)
    body = orjson.dumps({**orjson.loads(CHAT), "stream": True})
    writer.write(post(body, version="1.0"))
    (answer,) = await reader.answers(1)
    assert answer.status == 200
    assert "transfer-encoding" not in answer.headers
    assert answer.headers["connection"] == "close"
    assert answer.body.endswith(b"data: [DONE]\n\n")
    writer.close()


async def test_a_body_over_the_limit_is_refused_before_it_is_read(
    make_gateway: GatewayFactory, simulator: Simulator
) -> None:
    gateway = await make_gateway([one_model(simulator.base_url)], max_body_bytes=1000)
    reader, writer = await connect(gateway)
    big = b'{"model": "gpt-4o-mini", "pad": "' + b"x" * 5000 + b'"}'
    head, rest = post(big).split(b"\r\n\r\n", 1)
    writer.write(head + b"\r\n\r\n" + rest[:100])  # most of the body not sent yet
    (answer,) = await reader.answers(1)
    assert answer.status == 413 and answer.headers["connection"] == "close"
    assert orjson.loads(answer.body)["error"]["code"] == "request_too_large"
    writer.write(rest[100:])  # the rest is read and dropped, then the connection closes
    assert await reader.closed()
    writer.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nBad Header\r\n\r\n",
    ],
)
async def test_a_malformed_request_gets_400_and_the_connection_closes(
    gateway: Gateway, request_bytes: bytes
) -> None:
    reader, writer = await connect(gateway)
    writer.write(request_bytes)
    (answer,) = await reader.answers(1)
    assert answer.status == 400
    assert orjson.loads(answer.body)["error"]["code"] == "malformed_request"
    assert await reader.closed()
    writer.close()


async def test_an_unknown_path_is_aiohttps_404_in_openai_shape(gateway: Gateway) -> None:
    reader, writer = await connect(gateway)
    writer.write(get("/v1/nothing-here"))
    (answer,) = await reader.answers(1)
    assert answer.status == 404
    assert orjson.loads(answer.body)["error"]["code"] == "unknown_url"
    writer.close()


def test_a_header_value_with_a_line_break_is_never_written() -> None:
    with pytest.raises(ValueError, match="line break"):
        response_head(200, {"x-a": "1\r\nset-cookie: evil"}, "content-length: 0\r\n")
    head = response_head(200, {"x-a": "1"}, "content-length: 0\r\n", close=True)
    assert head.startswith(b"HTTP/1.1 200 OK\r\ndate: ")
    assert head.endswith(b"content-length: 0\r\nx-a: 1\r\nconnection: close\r\n\r\n")


async def test_shutdown_finishes_the_call_in_flight_then_closes_its_connection(
    simulator: Simulator,
) -> None:
    """runner.cleanup() as SIGTERM runs it: the listener closes, the keep-alive call in
    flight is answered (with `connection: close`), then the connection ends."""
    simulator.options = SimulatorOptions(api_key=PROVIDER_KEY, latency="300ms")
    config = parse_config(
        {
            "server": {"master_key": MASTER_KEY},
            "models": [one_model(simulator.base_url)],
            "database": None,
        },
        env={},
    )
    runner = web.AppRunner(build_app(config), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = FrontSite(runner, "127.0.0.1", 0)
    await site.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
    answers = Reader(reader)
    writer.write(post())
    await asyncio.sleep(0.1)  # the call is waiting on the upstream
    cleanup = asyncio.create_task(runner.cleanup())
    (answer,) = await answers.answers(1)
    assert answer.status == 200 and answer.headers["connection"] == "close"
    assert await answers.closed()
    await cleanup
    writer.close()
