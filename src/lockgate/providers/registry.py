"""Provider registry: a deployment's `provider:` name -> the adapter that serves it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lockgate.providers.keys import KeyEvent, KeyPool
from lockgate.providers.profiles import PROFILES
from lockgate.providers.ratelimits import LimitsSeen

if TYPE_CHECKING:
    from lockgate.config.schema import DeploymentConfig
    from lockgate.providers.base import Provider
    from lockgate.providers.http import HttpPool


def provider_names() -> frozenset[str]:
    return frozenset(PROFILES)


def create_provider(
    cfg: DeploymentConfig,
    http: HttpPool,
    *,
    deployment: str,
    on_key_event: KeyEvent,
    on_limits: LimitsSeen,
) -> Provider:
    from lockgate.providers.openai_compat import OpenAICompatible

    profile = PROFILES[cfg.provider]
    keys = cfg.keys()
    return OpenAICompatible(
        profile=profile,
        api_base=str(cfg.api_base) if cfg.api_base is not None else profile.api_base,
        api_key=keys[0] if len(keys) == 1 else None,
        on_limits=on_limits,
        key_pool=(
            KeyPool(keys, deployment=deployment, on_event=on_key_event) if len(keys) > 1 else None
        ),
        http=http,
        timeout=cfg.timeout,
        connect_timeout=cfg.connect_timeout,
        max_connections=cfg.max_connections,
        headers=cfg.headers,
    )
