"""Cache metrics: lookups by result, writes, and the tokens and money hits saved.

Labels are bounded: the model group (from config) and the scope kind (tenant or shared),
never a key or team id.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from lockgate.core.types import Usage
from lockgate.features.metrics import counter


class CacheMetrics:
    def __init__(self) -> None:
        self.lookups: dict[tuple[str, str, str], int] = {}  # model, scope, result
        self.writes: dict[tuple[str, str], int] = {}  # model, stored/not_storable
        self.saved_tokens: dict[tuple[str, str], int] = {}  # model, prompt/completion
        self.saved_usd: dict[str, float] = {}  # model

    def lookup(self, model: str, scope: str, result: str) -> None:
        key = (model, scope, result)
        self.lookups[key] = self.lookups.get(key, 0) + 1

    def write(self, model: str, outcome: str) -> None:
        key = (model, outcome)
        self.writes[key] = self.writes.get(key, 0) + 1

    def saved(self, model: str, usage: Usage, usd: float) -> None:
        for kind, count in (
            ("prompt", usage.prompt_tokens),
            ("completion", usage.completion_tokens),
        ):
            if count:
                key = (model, kind)
                self.saved_tokens[key] = self.saved_tokens.get(key, 0) + count
        self.saved_usd[model] = self.saved_usd.get(model, 0.0) + usd

    def summary(self) -> dict[str, dict[str, float]]:
        """Per model group: lookups by result, hit rate, saved tokens and USD (admin stats)."""
        out: dict[str, dict[str, float]] = {}
        for (model, _, result), count in self.lookups.items():
            row = out.setdefault(model, {})
            row[result] = row.get(result, 0) + count
        for model, row in out.items():
            hits = row.get("hit", 0) + row.get("semantic_hit", 0)
            looked = hits + row.get("miss", 0)
            row["hit_rate"] = hits / looked if looked else 0.0
            row["saved_usd"] = self.saved_usd.get(model, 0.0)
            for kind in ("prompt", "completion"):
                row[f"saved_{kind}_tokens"] = self.saved_tokens.get((model, kind), 0)
        return out

    def collect(self) -> Iterator[Metric]:
        yield counter(
            "lockgate_cache_requests",
            "Chat requests by what the response cache did: hit, semantic_hit, miss, refresh, "
            "bypass.",
            ["model", "scope", "result"], self.lookups,
        )  # fmt: skip
        yield counter(
            "lockgate_cache_writes", "Answers stored, or not stored (truncated, refusals...).",
            ["model", "outcome"], self.writes,
        )  # fmt: skip
        yield counter(
            "lockgate_cache_saved_tokens", "Tokens cache hits did not spend upstream.",
            ["model", "type"], self.saved_tokens,
        )  # fmt: skip
        yield counter(
            "lockgate_cache_saved_usd", "USD cache hits saved, at the deployment's prices.",
            ["model"], self.saved_usd,
        )  # fmt: skip
