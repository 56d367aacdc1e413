"""Tracing hooks the edge and the pipeline call when `tracing:` is configured.

Without the section the gateway holds no tracer (`None`): every hook site is one
attribute check and OpenTelemetry is never imported. With it, `build_tracing` loads the
OpenTelemetry implementation (`tracing_otel`, the `lockgate[otel]` extra).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from lockgate.core.types import RequestContext, Usage

if TYPE_CHECKING:
    from lockgate.config.schema import TracingConfig


class Attempt(Protocol):
    """One upstream attempt's span."""

    def first_token(self) -> None: ...

    def end(self, outcome: str, usage: Usage | None = None) -> None: ...


class Tracing(Protocol):
    def begin(
        self, ctx: RequestContext, route: str, method: str, headers: Mapping[str, str]
    ) -> None:
        """The request's server span (kept on the context)."""
        ...

    def end(self, ctx: RequestContext, status: int) -> None:
        """The request is over (after a stream's last chunk)."""
        ...

    def step(
        self, ctx: RequestContext, name: str, start_ns: int, error: BaseException | None = None
    ) -> None:
        """A finished pipeline step (authenticate, cache lookup) from ``start_ns`` to now."""
        ...

    def attempt(self, ctx: RequestContext, deployment: str, provider: str, model: str) -> Attempt:
        """An upstream attempt starting now, a client span under the request's."""
        ...

    async def close(self) -> None:
        """Flush what is buffered and stop exporting."""
        ...


def build_tracing(cfg: TracingConfig | None) -> Tracing | None:
    if cfg is None:
        return None
    from lockgate.features.tracing_otel import OtelTracing

    return OtelTracing(cfg)
