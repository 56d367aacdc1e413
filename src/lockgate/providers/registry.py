"""Provider registry: a deployment's `provider:` name -> the adapter that serves it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lockgate.providers.profiles import PROFILES

if TYPE_CHECKING:
    from lockgate.config.schema import DeploymentConfig
    from lockgate.providers.base import Provider
    from lockgate.providers.http import HttpPool


def provider_names() -> frozenset[str]:
    return frozenset(PROFILES)


def create_provider(cfg: DeploymentConfig, http: HttpPool) -> Provider:
    from lockgate.providers.openai_compat import OpenAICompatible

    profile = PROFILES[cfg.provider]
    api_key = cfg.api_key.get_secret_value() if cfg.api_key is not None else None
    return OpenAICompatible(
        profile=profile,
        api_base=str(cfg.api_base) if cfg.api_base is not None else profile.api_base,
        api_key=api_key,
        http=http,
        timeout=cfg.timeout,
        connect_timeout=cfg.connect_timeout,
        max_connections=cfg.max_connections,
        headers=cfg.headers,
    )
