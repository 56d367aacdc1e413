"""What a profiling run does: target, load shape, prompt shape, prices."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

Arrivals = Literal["poisson", "fixed"]


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """One run. Exactly one of ``rps`` (open loop) and ``concurrency`` (closed loop)."""

    model: str
    url: str = "http://127.0.0.1:4000"  # the gateway, or the upstream in direct mode
    api_key: str | None = None
    direct: bool = False  # ``url`` is an OpenAI-compatible upstream, not a lockgate
    rps: float | None = None
    concurrency: int | None = None
    duration: float = 10.0
    arrivals: Arrivals = "poisson"
    stream: bool = False
    prompt_tokens: int = 500
    max_tokens: int = 200
    prompts_file: str | None = None
    timeout: float = 60.0  # per request
    max_in_flight: int = 1000  # open loop: the client's own cap on open connections
    provider: str = "openai"  # the catalogue's provider, to price usage in direct mode
    price_input: Decimal | None = None  # USD per million tokens; overrides the catalogue
    price_output: Decimal | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if (self.rps is None) == (self.concurrency is None):
            raise ValueError("give exactly one of --rps (open loop) or --concurrency")
        if self.rps is not None and self.rps <= 0:
            raise ValueError("--rps must be positive")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("--concurrency must be at least 1")
        if self.duration <= 0:
            raise ValueError("--duration must be positive")
        if self.prompt_tokens < 1 or self.max_tokens < 1:
            raise ValueError("--prompt-tokens and --max-tokens must be at least 1")
        if (self.price_input is None) != (self.price_output is None):
            raise ValueError("give both --price-input and --price-output, or neither")

    @property
    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        if not base.endswith("/v1"):
            base += "/v1"
        return base + "/chat/completions"
