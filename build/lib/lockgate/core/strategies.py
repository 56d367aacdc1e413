"""Routing strategies: which of a group's ready deployments takes the next call.

weighted    random, in proportion to `weight` (the default)
least-busy  fewest calls in flight (ties: weighted)
latency     power of two choices on the EWMA of latency (time to first token for
            streams); a deployment with no measurement yet is tried first
cost        cheapest by configured price (input + output per million tokens)
ordered     the first ready deployment in config order (a priority list)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lockgate.core.router import Deployment

Strategy = Callable[[Sequence["Deployment"]], "Deployment"]


def weighted(pool: Sequence[Deployment]) -> Deployment:
    if len(pool) == 1:
        return pool[0]
    return random.choices(pool, weights=[d.weight for d in pool])[0]


def least_busy(pool: Sequence[Deployment]) -> Deployment:
    fewest = min(d.in_flight for d in pool)
    return weighted([d for d in pool if d.in_flight == fewest])


def lowest_latency(pool: Sequence[Deployment]) -> Deployment:
    if len(pool) == 1:
        return pool[0]
    unmeasured = [d for d in pool if d.latency_ewma is None]
    if unmeasured:
        return weighted(unmeasured)
    a, b = random.sample(list(pool), 2)
    return a if (a.latency_ewma or 0.0) <= (b.latency_ewma or 0.0) else b


def cheapest(pool: Sequence[Deployment]) -> Deployment:
    price = min(d.price for d in pool)
    return weighted([d for d in pool if d.price == price])


def ordered(pool: Sequence[Deployment]) -> Deployment:
    return pool[0]  # pools keep config order


STRATEGIES: dict[str, Strategy] = {
    "weighted": weighted,
    "least-busy": least_busy,
    "latency": lowest_latency,
    "cost": cheapest,
    "ordered": ordered,
}
