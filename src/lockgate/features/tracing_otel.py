"""OpenTelemetry spans for the request pipeline, exported by OTLP/HTTP (`lockgate[otel]`).

    POST /v1/chat/completions            server span, one per request
    ├── authenticate
    ├── cache lookup
    ├── chat gpt-4o-mini                 client span, one per upstream attempt (retries,
    └── chat gpt-4o-mini                 fallbacks and hedges each get their own)

Spans carry the GenAI semantic conventions' attributes (gen_ai.operation.name,
gen_ai.provider.name, gen_ai.request.model, gen_ai.usage.*, error.type) plus lockgate's
(deployment, attempt number, model group). An incoming W3C `traceparent` is honoured.
Spans are parented explicitly on the request's span kept on its context, so that attempts
run in other tasks (hedges, shared calls) still land in the right trace. Export happens
in the SDK's batch thread: the event loop only queues finished spans.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import extract
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from lockgate.config.schema import TracingConfig
from lockgate.core.types import RequestContext, Usage


def traces_url(endpoint: str) -> str:
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"


class OtelAttempt:
    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    def first_token(self) -> None:
        self.span.add_event("gen_ai.first_token")

    def end(self, outcome: str, usage: Usage | None = None) -> None:
        span = self.span
        span.set_attribute("lockgate.status", outcome)
        if usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        if outcome not in ("ok", "cancelled"):
            span.set_attribute("error.type", outcome)
            span.set_status(Status(StatusCode.ERROR, outcome))
        span.end()


class _NoAttempt:
    __slots__ = ()

    def first_token(self) -> None:
        pass

    def end(self, outcome: str, usage: Usage | None = None) -> None:
        pass


NO_ATTEMPT = _NoAttempt()


class OtelTracing:
    def __init__(self, cfg: TracingConfig) -> None:
        self.provider = TracerProvider(
            resource=Resource({"service.name": cfg.service_name}),  # no detectors: they use threads
            sampler=ParentBased(TraceIdRatioBased(cfg.sample_ratio)),
        )
        headers = {k: v.get_secret_value() for k, v in cfg.headers.items()}
        exporter = OTLPSpanExporter(
            endpoint=traces_url(cfg.otlp_endpoint), headers=headers, timeout=5
        )
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("lockgate")

    def begin(
        self, ctx: RequestContext, route: str, method: str, headers: Mapping[str, str]
    ) -> None:
        parent = extract(headers) if "traceparent" in headers else None
        ctx.span = self.tracer.start_span(
            f"{method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "http.route": route,
                "lockgate.request_id": ctx.request_id,
            },
        )

    def end(self, ctx: RequestContext, status: int) -> None:
        span, ctx.span = ctx.span, None
        if span is None:
            return
        span.set_attribute("http.response.status_code", status)
        if ctx.model_group:
            span.set_attribute("gen_ai.operation.name", ctx.operation)
            span.set_attribute("gen_ai.request.model", ctx.model_group)
            span.set_attribute("lockgate.deployment", ctx.deployment)
            span.set_attribute("lockgate.attempts", ctx.attempts)
            span.set_attribute("lockgate.fallback", ctx.fallback)
        if ctx.cache:
            span.set_attribute("lockgate.cache", ctx.cache)
        if ctx.outcome != "ok":
            span.set_attribute("error.type", ctx.outcome)
            span.set_status(Status(StatusCode.ERROR, ctx.outcome))
        span.end()

    def step(
        self, ctx: RequestContext, name: str, start_ns: int, error: BaseException | None = None
    ) -> None:
        if ctx.span is None:
            return
        span = self.tracer.start_span(
            name, context=trace.set_span_in_context(ctx.span), start_time=start_ns
        )
        if name == "cache lookup":
            span.set_attribute("lockgate.cache", ctx.cache or "none")
        if error is not None:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end(time.time_ns())

    def attempt(
        self, ctx: RequestContext, deployment: str, provider: str, model: str
    ) -> OtelAttempt | _NoAttempt:
        if ctx.span is None:
            return NO_ATTEMPT
        span = self.tracer.start_span(
            f"{ctx.operation} {model}",
            context=trace.set_span_in_context(ctx.span),
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": ctx.operation,
                "gen_ai.provider.name": provider,
                "gen_ai.request.model": model,
                "lockgate.model_group": ctx.model_group,
                "lockgate.deployment": deployment,
                "lockgate.attempt": ctx.attempts,
            },
        )
        return OtelAttempt(span)

    async def close(self) -> None:
        # Flushes the batch and joins the export thread: blocking, so off the event loop.
        await asyncio.to_thread(self.provider.shutdown)
