"""Provider registry: a deployment's `provider:` name -> the adapter that serves it.

Each provider family registers a factory as a "module:function" path, imported on first
use, so that start-up loads only the adapters the config names. A factory takes the
deployment's config and a `ProviderContext` and returns a `Provider`.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from lockgate.providers.keys import KeyEvent, KeyPool
from lockgate.providers.profiles import PROFILES
from lockgate.providers.ratelimits import LimitsSeen

if TYPE_CHECKING:
    from lockgate.config.schema import DeploymentConfig
    from lockgate.providers.base import Provider
    from lockgate.providers.http import HttpPool


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What the gateway hands every adapter besides its own config."""

    deployment: str  # the deployment's id, for key-pool reports
    http: HttpPool  # pooled HTTP sessions, one per upstream origin
    on_key_event: KeyEvent  # a pool key was disabled or rested
    on_limits: LimitsSeen  # the provider advertised its rate limits on a response
    # Called once at shutdown, after in-flight requests: adapters that hold more than
    # pooled HTTP sessions (threads, models) register how to release it.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def key_pool(self, keys: list[str]) -> KeyPool | None:
        """A rotating pool when the deployment has several keys; None for zero or one."""
        if len(keys) < 2:
            return None
        return KeyPool(keys, deployment=self.deployment, on_event=self.on_key_event)


Factory = Callable[["DeploymentConfig", ProviderContext], "Provider"]

_OPENAI_COMPATIBLE = "lockgate.providers.openai_compat:from_config"

# provider name -> "module:function" of its factory.
ADAPTERS: dict[str, str] = {
    **{name: _OPENAI_COMPATIBLE for name in PROFILES},
    "local": "lockgate.providers.local:from_config",
    "local-embed": "lockgate.providers.local_embed:from_config",
    "anthropic": "lockgate.providers.anthropic:from_config",
    "gemini": "lockgate.providers.gemini:from_config",
    "bedrock": "lockgate.providers.bedrock.client:from_config",
}

# Deployment fields that only some providers use: field -> the providers that accept it.
PROVIDER_FIELDS: dict[str, frozenset[str]] = {
    "api_version": frozenset({"azure"}),
    "region": frozenset({"bedrock"}),
    "aws_access_key_id": frozenset({"bedrock"}),
    "aws_secret_access_key": frozenset({"bedrock"}),
    "aws_session_token": frozenset({"bedrock"}),
}
# Fields a provider cannot work without (it has no public default to fall back on).
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {"azure": ("api_base",), "bedrock": ("region",)}
# Common fields a provider has no use for (giving them is a mistake worth reporting).
UNUSED_FIELDS: dict[str, tuple[str, ...]] = {"bedrock": ("api_key", "api_keys")}


def provider_names() -> frozenset[str]:
    return frozenset(ADAPTERS)


def create_provider(cfg: DeploymentConfig, ctx: ProviderContext) -> Provider:
    module, _, function = ADAPTERS[cfg.provider].partition(":")
    factory = cast(Factory, getattr(importlib.import_module(module), function))
    return factory(cfg, ctx)
