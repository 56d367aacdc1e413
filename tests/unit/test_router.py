"""Model name resolution: exact names, wildcard groups, 404 listing what exists."""

from __future__ import annotations

import pytest

from lockgate.config.schema import CooldownConfig
from lockgate.core.cooldown import Breaker
from lockgate.core.errors import NotFound
from lockgate.core.router import Deployment, ModelGroup, Router


def _group(name: str, model: str) -> ModelGroup:
    breaker = Breaker(name, CooldownConfig(), lambda dep, state: None)
    dep = Deployment(name, "openai", model, 1.0, adapter=None, breaker=breaker)  # type: ignore[arg-type]
    return ModelGroup(name, [dep])


def test_exact_then_longest_wildcard() -> None:
    router = Router(
        [_group("gpt-4o", "gpt-4o"), _group("openai/*", "*"), _group("openai/o*", "o*")]
    )
    group, matched = router.resolve("gpt-4o")
    assert group.name == "gpt-4o" and matched == ""
    group, matched = router.resolve("openai/o3")
    assert group.name == "openai/o*" and group.deployments[0].upstream_model(matched) == "o3"
    group, matched = router.resolve("openai/gpt-5")
    assert group.deployments[0].upstream_model(matched) == "gpt-5"


def test_unknown_model_lists_names() -> None:
    with pytest.raises(NotFound) as info:
        Router([_group("a", "a"), _group("b", "b")]).resolve("c")
    assert "Available: a, b" in info.value.message
    assert info.value.param == "model"


def test_hedge_delay_from_p95_once_there_are_samples() -> None:
    a, b = _group("a", "a").deployments[0], _group("b", "b").deployments[0]
    group = ModelGroup("m", [a, b], hedge_after="p95")
    assert group.hedge_delay() is None  # nothing observed yet
    for ms in range(1, 101):
        group.observe_latency(ms / 1000)
    assert group.hedge_delay() == 0.096
    assert ModelGroup("m", [a, b], hedge_after=0.25).hedge_delay() == 0.25
    assert ModelGroup("m", [a], hedge_after=0.25).hedge_delay() is None  # nothing to race
