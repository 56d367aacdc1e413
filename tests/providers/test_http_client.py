"""The upstream HTTP client against real sockets: raw servers that answer as told.

Each test runs on asyncio's loop and on uvloop (the one the gateway serves on), whose
transports behave differently in places (connection_made is called later, for one); so
the tests run their own loops rather than pytest-asyncio's.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvloop
from yarl import URL

from lockgate.providers.http import HttpPool
from lockgate.providers.http_client import (
    BadResponse,
    ConnectFailed,
    Disconnected,
    OriginPool,
    TimedOut,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "RawServer"], Awaitable[None]]
Start = Callable[[Handler], Awaitable["RawServer"]]
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def both_loops(test: Callable[[Start], Awaitable[None]]) -> Callable[[str], None]:
    """A test run once on each loop, with `start` to open raw servers (closed after)."""

    def run(loop: str) -> None:
        async def main() -> None:
            async with _servers() as start:
                await asyncio.wait_for(test(start), 20)

        with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
            runner.run(main())

    run.__name__, run.__doc__ = test.__name__, test.__doc__
    return pytest.mark.parametrize("loop", sorted(LOOPS))(run)


@dataclass
class RawServer:
    handler: Handler
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed_by_peer: asyncio.Event = field(default_factory=asyncio.Event)
    url: URL = field(default_factory=URL)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_now -= 1
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request (head and Content-Length body), or None at EOF."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.closed_by_peer.set()
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


@asynccontextmanager
async def _servers() -> AsyncIterator[Start]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> RawServer:
        state = RawServer(handler)
        server = await asyncio.start_server(state.serve, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        state.url = URL(f"http://127.0.0.1:{port}/v1/chat/completions?x=1")
        return state

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def _answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body


async def _echo_forever(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
    while (request := await s.read_request(r)) is not None:
        w.write(_answer(b'{"n": %d}' % len(s.requests), "X-Seen: yes"))
        await w.drain()
        del request


def _pool(url: URL, *, limit: int = 10, connect_timeout: float = 5.0) -> OriginPool:
    return OriginPool(url, limit=limit, connect_timeout=connect_timeout, tls=None)


@both_loops
async def test_keep_alive_reuses_one_connection_and_sends_what_it_was_given(
    raw_server: Start,
) -> None:
    server = await raw_server(_echo_forever)
    pool = _pool(server.url)
    try:
        for n in (1, 2, 3):
            resp = await pool.request("POST", server.url, b'{"a": 1}', {"X-Key": "v"}, 5)
            assert (resp.status, resp.headers["x-seen"]) == (200, "yes")
            assert await resp.read() == b'{"n": %d}' % n
    finally:
        pool.close()
    assert server.connections == 1
    port = server.url.port
    assert server.requests[0] == (
        b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Key: v\r\n"
        b'Content-Length: 8\r\n\r\n{"a": 1}' % port
    )


@both_loops
async def test_the_connection_limit_queues_requests(raw_server: Start) -> None:
    async def slow(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        while await s.read_request(r) is not None:
            await asyncio.sleep(0.05)
            w.write(_answer(b"ok"))

    server = await raw_server(slow)
    pool = _pool(server.url, limit=2)

    async def one() -> bytes:
        resp = await pool.request("POST", server.url, b"", {}, 5)
        return await resp.read()

    try:
        assert await asyncio.gather(*(one() for _ in range(6))) == [b"ok"] * 6
    finally:
        pool.close()
    assert (server.connections, server.most_open, len(server.requests)) == (2, 2, 6)


@both_loops
async def test_chunked_gzip_bodies_arrive_decoded_and_in_pieces(raw_server: Start) -> None:
    packed = gzip.compress(b"data: one\n\n" + b"data: two\n\n")
    go_on = asyncio.Event()

    async def chunked(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await s.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n")
        half = len(packed) // 2
        w.write(b"%x\r\n%s\r\n" % (half, packed[:half]))
        await go_on.wait()  # the first piece must be readable before the rest is sent
        w.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(packed) - half, packed[half:]))
        await s.read_request(r)

    server = await raw_server(chunked)
    pool = _pool(server.url)
    try:
        resp = await pool.request("POST", server.url, b"{}", {}, 5)
        pieces = []
        async for piece in resp.iter_any():
            pieces.append(piece)
            go_on.set()
        resp.release()
    finally:
        pool.close()
    assert b"".join(pieces) == b"data: one\n\ndata: two\n\n"
    assert len(pieces) >= 2


@both_loops
async def test_a_silent_upstream_times_out_and_its_connection_is_closed(raw_server: Start) -> None:
    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await s.read_request(r)
        await s.read_request(r)  # returns at EOF: the client gave up

    server = await raw_server(silent)
    pool = _pool(server.url)
    with pytest.raises(TimedOut):
        await pool.request("POST", server.url, b"{}", {}, 0.1)
    await asyncio.wait_for(server.closed_by_peer.wait(), 5)
    pool.close()


@both_loops
async def test_the_timeout_covers_the_body_too(raw_server: Start) -> None:
    async def stalls(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await s.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        await s.read_request(r)

    server = await raw_server(stalls)
    pool = _pool(server.url)
    resp = await pool.request("POST", server.url, b"{}", {}, 0.2)
    with pytest.raises(TimedOut):
        await resp.read()
    pool.close()


@both_loops
async def test_connect_failure_names_the_host(raw_server: Start) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    url = URL(f"http://127.0.0.1:{port}/v1")
    pool = _pool(url, limit=1)
    with pytest.raises(ConnectFailed) as caught:
        await pool.request("POST", url, b"{}", {}, 5)
    assert (caught.value.host, caught.value.port) == ("127.0.0.1", port)
    # A call waiting for the only slot gets it when a connect fails, not at its deadline.
    calls = [pool.request("POST", url, b"{}", {}, 5) for _ in range(2)]
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 2)
    assert all(isinstance(r, ConnectFailed) for r in results)


@both_loops
async def test_a_body_cut_short_is_an_error_and_the_connection_is_not_reused(
    raw_server: Start,
) -> None:
    async def cuts(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await s.read_request(r)
        if len(s.requests) == 1:
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            await w.drain()
            return  # closes the connection
        w.write(_answer(b"fine"))
        await s.read_request(r)

    server = await raw_server(cuts)
    pool = _pool(server.url)
    try:
        resp = await pool.request("POST", server.url, b"{}", {}, 5)
        with pytest.raises(Disconnected):
            await resp.read()
        resp = await pool.request("POST", server.url, b"{}", {}, 5)
        assert await resp.read() == b"fine"
    finally:
        pool.close()
    assert server.connections == 2


@both_loops
async def test_a_body_that_ends_with_the_connection(raw_server: Start) -> None:
    async def until_eof(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await s.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")

    server = await raw_server(until_eof)
    pool = _pool(server.url)
    resp = await pool.request("POST", server.url, b"{}", {}, 5)
    assert await resp.read() == b"all of it"
    pool.close()


@both_loops
async def test_connection_close_is_honoured(raw_server: Start) -> None:
    async def closes(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await s.read_request(r)
        w.write(_answer(b"once", "Connection: close"))
        await w.drain()

    server = await raw_server(closes)
    pool = _pool(server.url)
    try:
        for _ in range(2):
            resp = await pool.request("POST", server.url, b"{}", {}, 5)
            assert await resp.read() == b"once"
    finally:
        pool.close()
    assert server.connections == 2


@both_loops
async def test_an_idle_connection_the_upstream_closed_is_replaced(raw_server: Start) -> None:
    async def one_per_connection(
        r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer
    ) -> None:
        await s.read_request(r)
        w.write(_answer(b"ok"))  # keep-alive is allowed, then the idle connection is closed
        await w.drain()

    server = await raw_server(one_per_connection)
    pool = _pool(server.url)
    try:
        resp = await pool.request("POST", server.url, b"{}", {}, 5)
        assert await resp.read() == b"ok"
        await asyncio.sleep(0.1)  # the server's close arrives while the connection is idle
        resp = await pool.request("POST", server.url, b"{}", {}, 5)
        assert await resp.read() == b"ok"
    finally:
        pool.close()
    assert server.connections == 2


@both_loops
async def test_garbage_is_a_bad_response(raw_server: Start) -> None:
    async def garbage(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await s.read_request(r)
        w.write(b"SMTP ready\r\n\r\n")
        await s.read_request(r)

    server = await raw_server(garbage)
    pool = _pool(server.url)
    with pytest.raises(BadResponse):
        await pool.request("POST", server.url, b"{}", {}, 5)
    pool.close()


@both_loops
async def test_a_cancelled_call_closes_its_connection_and_frees_its_slot(raw_server: Start) -> None:
    async def first_hangs(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        while await s.read_request(r) is not None:
            if len(s.requests) > 1:
                w.write(_answer(b"second"))

    server = await raw_server(first_hangs)
    pool = _pool(server.url, limit=1)
    try:
        call = asyncio.ensure_future(pool.request("POST", server.url, b"{}", {}, 5))
        while not server.requests:
            await asyncio.sleep(0.01)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.wait_for(server.closed_by_peer.wait(), 5)  # the upstream sees it go
        resp = await asyncio.wait_for(pool.request("POST", server.url, b"{}", {}, 5), 5)
        assert await resp.read() == b"second"
    finally:
        pool.close()


@both_loops
async def test_line_breaks_in_headers_are_refused(raw_server: Start) -> None:
    server = await raw_server(_echo_forever)
    pool = _pool(server.url, limit=1)
    with pytest.raises(ValueError, match="line break"):
        await pool.request("POST", server.url, b"{}", {"X-Evil": "a\r\nHost: other"}, 5)
    assert not server.requests
    # The refusal held no connection: the pool's only slot is free for the next call.
    resp = await asyncio.wait_for(pool.request("POST", server.url, b"{}", {}, 5), 5)
    assert await resp.read() == b'{"n": 1}'
    pool.close()


@both_loops
async def test_the_pool_keeps_one_origin_pool_per_origin(raw_server: Start) -> None:
    http = HttpPool()
    a = http.origin(URL("http://127.0.0.1:1/v1/x"), max_connections=4, connect_timeout=1)
    b = http.origin(URL("http://127.0.0.1:1/v1/y"), max_connections=4, connect_timeout=1)
    c = http.origin(URL("https://127.0.0.1:1/v1/x"), max_connections=4, connect_timeout=1)
    assert a is b and a is not c
    with pytest.raises(ValueError, match="http or https"):
        http.origin(URL("ftp://127.0.0.1/"), max_connections=4, connect_timeout=1)
    await http.close()


def _self_signed(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1, and a client one trusting it."""
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_https_verifies_the_certificate_and_keeps_alive(loop: str, tmp_path: Path) -> None:
    server_tls, client_tls = _self_signed(tmp_path)

    async def main() -> None:
        state = RawServer(_echo_forever)
        server = await asyncio.start_server(state.serve, "127.0.0.1", 0, ssl=server_tls)
        port = server.sockets[0].getsockname()[1]
        url = URL(f"https://127.0.0.1:{port}/v1/chat/completions")
        trusting, untrusting = HttpPool(client_tls), HttpPool(ssl.create_default_context())
        try:
            for n in (1, 2):
                resp = await trusting.post(
                    url, b"{}", {}, seconds=5, connect_timeout=5, max_connections=4
                )
                assert await resp.read() == b'{"n": %d}' % n
            with pytest.raises(ConnectFailed):
                await untrusting.post(
                    url, b"{}", {}, seconds=5, connect_timeout=5, max_connections=4
                )
        finally:
            await trusting.close()
            await untrusting.close()
            server.close()
        # Both requests went over one connection; the refused handshake never served one.
        assert (state.connections, len(state.requests)) == (1, 2)

    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        runner.run(main())


@both_loops
async def test_a_slow_reader_pauses_the_upstream_and_loses_nothing(raw_server: Start) -> None:
    size, piece = 32 << 20, b"x" * (1 << 16)
    sent = 0

    async def big(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        nonlocal sent
        await s.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        while sent < size:
            w.write(piece)
            sent += len(piece)
            await w.drain()
        await s.read_request(r)

    server = await raw_server(big)
    pool = _pool(server.url)
    try:
        resp = await pool.request("POST", server.url, b"{}", {}, 30)
        received = 0
        async for chunk in resp.iter_any():
            if received == 0:
                await asyncio.sleep(0.3)  # a reader that stalls: the socket must be paused
                assert sent < size // 2  # the upstream waits instead of filling our memory
            received += len(chunk)
        resp.release()
    finally:
        pool.close()
    assert received == size
