"""Traces through the real HTTP app: the request's server span, its pipeline steps, one
client span per upstream attempt (a retry and a fallback each show up as their own),
a stream's first-token event, W3C parent propagation and OTLP/HTTP export. Without the
`tracing:` section neither lockgate's tracer nor the OpenTelemetry SDK is imported."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from lockgate.features.tracing_otel import OtelTracing
from tests.conftest import Gateway, GatewayFactory, SimFactory, dep

HELLO = [{"role": "user", "content": "hello"}]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


Collector = tuple[str, list[bytes]]


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    """An OTLP/HTTP receiver: what the gateway exports lands in ``received``. Requested
    before make_gateway, so that it outlives the gateway's final export at shutdown."""
    received: list[bytes] = []

    async def traces(request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        received.append(await request.read())
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", received
    await runner.cleanup()


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return sorted(
        (s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id),
        key=lambda s: s.start_time or 0,
    )


def _server(spans: list[ReadableSpan], request_id: str) -> ReadableSpan:
    (span,) = [s for s in spans if (s.attributes or {}).get("lockgate.request_id") == request_id]
    assert span.kind == SpanKind.SERVER
    return span


async def test_spans_for_steps_attempts_retries_and_fallbacks(
    collector: Collector, make_gateway: GatewayFactory, make_sim: SimFactory
) -> None:
    endpoint, received = collector
    sim = await make_sim()
    broken = await make_sim(error_rates={500: 1.0})
    gw: Gateway = await make_gateway(
        [
            {"name": "plain", "deployments": [dep(sim, "primary")]},
            {
                "name": "flaky",
                "strategy": "ordered",
                "deployments": [dep(broken, "down"), dep(sim, "backup")],
            },
            {"name": "broken", "deployments": [dep(broken, "dead")], "fallbacks": ["plain"]},
        ],
        retry={"retries": 1},
        sections={"cache": {}, "tracing": {"otlp_endpoint": endpoint, "service_name": "gw-t"}},
    )
    tracing = gw.state.pipeline.tracing
    assert isinstance(tracing, OtelTracing)
    memory = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(memory))

    def rid(name: str, **headers: str) -> dict[str, Any]:
        return {"extra_headers": {"x-request-id": name, **headers}}

    parent = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
    async with gw.client() as client:
        await client.chat.completions.create(
            model="plain", messages=HELLO, temperature=0, **rid("ok", **parent)
        )
        await client.chat.completions.create(model="flaky", messages=HELLO, **rid("retried"))
        await client.chat.completions.create(model="broken", messages=HELLO, **rid("fell"))
        stream = await client.chat.completions.create(
            model="plain", messages=HELLO, stream=True, **rid("streamed")
        )
        async for _ in stream:
            pass
    async with gw.client(api_key="sk-not-a-key") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="plain", messages=HELLO, **rid("anon"))

    spans = list(memory.get_finished_spans())
    ok = _server(spans, "ok")
    assert ok.name == "POST /v1/chat/completions"
    assert format(ok.context.trace_id, "032x") == TRACE_ID  # the caller's trace continues
    attrs = ok.attributes or {}
    assert attrs["http.response.status_code"] == 200
    assert attrs["gen_ai.request.model"] == "plain" and attrs["lockgate.cache"] == "miss"
    steps = _children(spans, ok)
    assert [s.name for s in steps] == ["authenticate", "cache lookup", "chat gpt-4o-mini"]
    (attempt,) = [s for s in steps if s.kind == SpanKind.CLIENT]
    a = attempt.attributes or {}
    assert (a["gen_ai.operation.name"], a["gen_ai.provider.name"]) == ("chat", "openai")
    assert (a["lockgate.deployment"], a["lockgate.attempt"]) == ("primary", 1)
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0

    attempts = [s for s in _children(spans, _server(spans, "retried")) if s.kind == SpanKind.CLIENT]
    assert [(s.attributes or {})["lockgate.deployment"] for s in attempts] == ["down", "backup"]
    assert [(s.attributes or {})["lockgate.attempt"] for s in attempts] == [1, 2]
    assert attempts[0].status.status_code == StatusCode.ERROR
    assert (attempts[0].attributes or {})["error.type"] == "upstream"
    assert attempts[1].status.status_code == StatusCode.UNSET

    fell = _server(spans, "fell")
    assert (fell.attributes or {})["lockgate.fallback"] is True
    attempts = [s for s in _children(spans, fell) if s.kind == SpanKind.CLIENT]
    groups = [(s.attributes or {})["lockgate.model_group"] for s in attempts]
    assert groups == ["broken", "broken", "plain"]  # a retry, then the fallback
    assert [(s.attributes or {})["lockgate.attempt"] for s in attempts] == [1, 2, 3]

    (first,) = [
        s for s in _children(spans, _server(spans, "streamed")) if s.kind == SpanKind.CLIENT
    ]
    assert [e.name for e in first.events] == ["gen_ai.first_token"]

    anon = _server(spans, "anon")
    assert anon.status.status_code == StatusCode.ERROR
    assert (anon.attributes or {})["http.response.status_code"] == 401
    (auth,) = _children(spans, anon)
    assert auth.name == "authenticate" and auth.status.status_code == StatusCode.ERROR
    assert "sk-not-a-key" not in str([s.to_json() for s in spans])

    # The batch exporter sends them to the collector over OTLP/HTTP.
    assert await asyncio.to_thread(tracing.provider.force_flush)
    assert received and all(b"gw-t" in body for body in received)


def test_no_tracing_section_imports_no_opentelemetry(tmp_path: Path) -> None:
    # redis-py imports parts of the OpenTelemetry API itself when it is installed: what
    # must stay out is lockgate's tracer, the SDK's tracing and the exporter.
    code = (
        "import sys\n"
        "OURS = ('lockgate.features.tracing_otel', 'opentelemetry.sdk.trace', "
        "'opentelemetry.exporter')\n"
        "from lockgate.app import build_app\n"
        "from lockgate.config.loader import parse_config\n"
        "build_app(parse_config({'database': None, 'models': [{'name': 'm', 'deployments': "
        "[{'provider': 'openai', 'model': 'gpt-4o-mini', 'api_key': 'x'}]}]}, env={}))\n"
        "print(sorted(m for m in sys.modules if m.startswith(OURS)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
