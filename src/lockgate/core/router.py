"""Routing: a client's model name -> its model group -> the deployment to call."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lockgate.core.admission import Admission
from lockgate.core.cooldown import Breaker
from lockgate.core.errors import CoolingDown, NotFound
from lockgate.core.strategies import STRATEGIES

if TYPE_CHECKING:
    from lockgate.providers.base import Provider


@dataclass(slots=True)
class Deployment:
    id: str
    provider: str
    model: str  # the upstream's model name; `*` stands for what a wildcard group matched
    weight: float
    adapter: Provider
    breaker: Breaker
    first_token_timeout: float | None = None
    idle_timeout: float | None = None
    context_window: int | None = None  # tokens; checked before sending when known
    admission: Admission = field(default_factory=Admission)
    price: float = float("inf")  # input + output USD per million tokens, for `cost` routing
    in_flight: int = 0
    latency_ewma: float | None = None  # seconds to the answer (the first chunk, for streams)

    def typical_latency(self) -> float:
        return self.latency_ewma if self.latency_ewma is not None else 1.0

    def observe_latency(self, seconds: float, alpha: float = 0.2) -> None:
        ewma = self.latency_ewma
        self.latency_ewma = seconds if ewma is None else ewma + alpha * (seconds - ewma)

    def upstream_model(self, matched: str) -> str:
        return self.model.replace("*", matched) if matched else self.model


LATENCY_SAMPLES = 200  # recent answers a group keeps for its p95
MIN_SAMPLES = 20


class ModelGroup:
    """Deployments serving one model name. A name ending in `*` serves every name it prefixes."""

    def __init__(
        self,
        name: str,
        deployments: list[Deployment],
        *,
        retries: int | None = None,
        strategy: str = "weighted",
        coalesce: str = "deterministic",
        hedge_after: float | str | None = None,
        fallbacks: tuple[str, ...] = (),
        context_window_fallbacks: tuple[str, ...] = (),
        content_policy_fallbacks: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.deployments = deployments
        self.retries = retries  # None: the gateway-wide setting
        self.strategy = strategy
        self.coalesce = coalesce
        self.hedge_after = hedge_after  # seconds, "p95" of recent answers, or None (off)
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._choose = STRATEGIES[strategy]
        self.fallbacks = fallbacks
        self.context_window_fallbacks = context_window_fallbacks
        self.content_policy_fallbacks = content_policy_fallbacks
        self.prefix = name[:-1] if name.endswith("*") else None

    def pick(self, avoid: frozenset[str] = frozenset()) -> Deployment:
        """A deployment by the group's strategy among those not cooling down, preferring
        those not in ``avoid`` (ids that already failed this request) while any remain."""
        deployments = self.deployments
        if len(deployments) == 1:
            dep = deployments[0]
            if not dep.breaker.available():
                raise self._cooling_down()
        else:
            ready = [d for d in deployments if d.breaker.available()]
            if not ready:
                raise self._cooling_down()
            pool = [d for d in ready if d.id not in avoid] if avoid else ready
            dep = self._choose(pool or ready)
        dep.breaker.acquire()
        return dep

    def observe_latency(self, seconds: float) -> None:
        if self.hedge_after == "p95":
            self._latencies.append(seconds)

    def hedge_delay(self) -> float | None:
        """How long the first attempt may go unanswered before a hedge starts."""
        if self.hedge_after is None or len(self.deployments) < 2:
            return None
        if isinstance(self.hedge_after, float | int):
            return float(self.hedge_after)
        if len(self._latencies) < MIN_SAMPLES:
            return None  # no p95 to go by yet
        ordered = sorted(self._latencies)
        return ordered[int(len(ordered) * 0.95)]

    def _cooling_down(self) -> CoolingDown:
        wait = min(d.breaker.retry_in() for d in self.deployments)
        return CoolingDown(
            f"every deployment of {self.name!r} is cooling down after failures",
            retry_after=wait,
        )


class Router:
    def __init__(self, groups: list[ModelGroup]) -> None:
        self._exact = {g.name: g for g in groups if g.prefix is None}
        # Longest prefix first, so `openai/gpt-*` wins over `openai/*`.
        self._wildcards = sorted(
            (g for g in groups if g.prefix is not None),
            key=lambda g: len(g.prefix or ""),
            reverse=True,
        )
        self._names = [g.name for g in groups]
        self._groups = list(groups)

    def names(self) -> list[str]:
        return list(self._names)

    def groups(self) -> list[ModelGroup]:
        """Every group, in config order."""
        return list(self._groups)

    def group(self, name: str) -> ModelGroup:
        """A configured group by its exact name (fallback targets are exact names)."""
        group = self._exact.get(name)
        if group is None:
            raise NotFound(f"The fallback model {name!r} is not configured.", param="fallbacks")
        return group

    def resolve(self, model: str) -> tuple[ModelGroup, str]:
        """The group for ``model`` and, for a wildcard group, the part the `*` matched."""
        group = self._exact.get(model)
        if group is not None:
            return group, ""
        for group in self._wildcards:
            prefix = group.prefix or ""
            if model.startswith(prefix) and len(model) > len(prefix):
                return group, model[len(prefix) :]
        available = ", ".join(self._names) or "(none configured)"
        raise NotFound(
            f"The model {model!r} does not exist or is not served here. Available: {available}",
            param="model",
        )
