"""Fallbacks: which model group a request moves to once a group has failed.

A failure that retrying could help (or a provider refusing lockgate's key) moves along the
model's `fallbacks` (or the request's own list); a context window exceeded moves along
`context_window_fallbacks` and a content filter along `content_policy_fallbacks`, without
retrying. Any other failure (the request itself is bad) goes back to the client.
"""

from __future__ import annotations

from lockgate.core.errors import (
    ContentFiltered,
    ContextWindowExceeded,
    GatewayError,
    ProviderAuthError,
)
from lockgate.core.router import ModelGroup, Router


class FallbackChain:
    def __init__(
        self, router: Router, primary: ModelGroup, override: tuple[str, ...] | None = None
    ) -> None:
        self._queues = {
            "general": [router.group(n) for n in (override if override is not None else
                                                   primary.fallbacks)],
            "context": [router.group(n) for n in primary.context_window_fallbacks],
            "policy": [router.group(n) for n in primary.content_policy_fallbacks],
        }  # fmt: skip
        self._visited = {primary.name}

    def next(self, exc: GatewayError) -> ModelGroup | None:
        if isinstance(exc, ContextWindowExceeded):
            queue = self._queues["context"]
        elif isinstance(exc, ContentFiltered):
            queue = self._queues["policy"]
        elif exc.retryable or isinstance(exc, ProviderAuthError):
            queue = self._queues["general"]
        else:
            return None
        while queue:
            group = queue.pop(0)
            if group.name not in self._visited:
                self._visited.add(group.name)
                return group
        return None
