"""What a cache hit saved: the tokens of the stored answer, priced as its deployment charges.

One function, so that it can be pointed at the shared pricing module when there is one.
"""

from __future__ import annotations

from lockgate.config.schema import Prices
from lockgate.core.types import Usage


def saved_cost(usage: Usage, prices: Prices | None) -> float:
    """USD the upstream call would have cost; 0 when the deployment has no prices."""
    if prices is None:
        return 0.0
    return (usage.prompt_tokens * prices.input + usage.completion_tokens * prices.output) / 1e6
