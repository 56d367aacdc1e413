"""A minimal, fast OpenAI-shaped upstream for benchmarks (aiohttp low-level server + uvloop).

It answers `POST /v1/chat/completions` with a fixed, realistic chat completion (or an SSE
stream when the body has `"stream": true`), optionally after a delay. It does as little
work per request as possible so that the proxy under test, not the upstream, is measured.

    python bench/upstream.py --port 9100 [--delay-ms 200] [--ttft-ms 20]
                             [--inter-token-ms 2] [--tokens 16] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket

import orjson
from aiohttp import web

_CONTENT = "lockgate is an AI gateway that sits between applications and LLM providers."


def chat_body(model: str = "gpt-4o-mini") -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench0000000000000000000000",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": _CONTENT, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 42, "completion_tokens": 16, "total_tokens": 58},
        }
    )


def stream_events(tokens: int, model: str = "gpt-4o-mini") -> list[bytes]:
    """The SSE events of one streamed answer: role, `tokens` content deltas, finish, usage."""
    base = {
        "id": "chatcmpl-bench0000000000000000000000",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "system_fingerprint": "fp_bench",
    }

    def event(choices: list[object], usage: object = None) -> bytes:
        data = orjson.dumps({**base, "choices": choices, "usage": usage})
        return b"data: " + data + b"\n\n"

    events = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
    words = _CONTENT.split(" ")
    for i in range(tokens):
        word = words[i % len(words)] + " "
        events.append(event([{"index": 0, "delta": {"content": word}, "finish_reason": None}]))
    events.append(event([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    usage = {"prompt_tokens": 42, "completion_tokens": tokens, "total_tokens": 42 + tokens}
    events.append(event([], usage))
    events.append(b"data: [DONE]\n\n")
    return events


class Upstream:
    def __init__(self, *, delay: float, ttft: float, inter_token: float, tokens: int) -> None:
        self.delay = delay
        self.ttft = ttft
        self.inter_token = inter_token
        self.body = chat_body()
        self.events = stream_events(tokens)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method != "POST" or not request.path.endswith("/chat/completions"):
            if request.path.startswith("/health"):
                return web.Response(body=b'{"status":"ok"}', content_type="application/json")
            return web.Response(status=404)
        payload = orjson.loads(await request.read())
        if payload.get("stream"):
            return await self._stream(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(body=self.body, content_type="application/json")

    async def _stream(self, request: web.BaseRequest) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        if self.ttft:
            await asyncio.sleep(self.ttft)
        last = len(self.events) - 1
        for i, event in enumerate(self.events):
            await response.write(event)
            if self.inter_token and 0 < i < last:
                await asyncio.sleep(self.inter_token)
        await response.write_eof()
        return response


async def serve(args: argparse.Namespace, sock: socket.socket) -> None:
    upstream = Upstream(
        delay=args.delay_ms / 1000,
        ttft=args.ttft_ms / 1000,
        inter_token=args.inter_token_ms / 1000,
        tokens=args.tokens,
    )
    server = web.Server(upstream.handle, access_log=None)
    runner = web.ServerRunner(server, handle_signals=False)
    await runner.setup()
    site = web.SockSite(runner, sock, backlog=4096)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def _run(args: argparse.Namespace) -> None:
    import uvloop

    sock = listening_socket(args.host, args.port)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args, sock))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="non-streaming delay")
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="streaming first-token delay")
    parser.add_argument("--inter-token-ms", type=float, default=0.0)
    parser.add_argument("--tokens", type=int, default=16, help="content chunks per stream")
    parser.add_argument("--workers", type=int, default=1, help="processes (SO_REUSEPORT)")
    args = parser.parse_args()
    children: list[int] = []
    for _ in range(args.workers - 1):
        pid = os.fork()
        if pid == 0:
            _run(args)
            os._exit(0)
        children.append(pid)
    try:
        _run(args)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
