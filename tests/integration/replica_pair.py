"""Two gateways sharing one Redis prefix: the replicas of the shared-state tests."""

from __future__ import annotations

from typing import Any

from tests.conftest import Gateway, GatewayFactory, wait_until


async def replica_pair(
    make_gateway: GatewayFactory,
    models: list[dict[str, Any]],
    redis_url: str,
    redis_prefix: str,
    *,
    redis: dict[str, Any] | None = None,
    **options: Any,
) -> tuple[Gateway, Gateway]:
    """Two replicas of one config, both connected to the shared state."""
    section = {"url": redis_url, "prefix": redis_prefix, "sync_interval": 0.2, **(redis or {})}
    pair = (
        await make_gateway(models, sections={"redis": section}, **options),
        await make_gateway(models, sections={"redis": section}, **options),
    )
    await wait_until(lambda: all(_linked(g) for g in pair))
    return pair


def _linked(gateway: Gateway) -> bool:
    replicas = gateway.state.replicas
    return replicas is not None and replicas.link.up and replicas.capacity.replicas == 2
