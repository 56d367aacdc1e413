"""Conformance cases: how each adapter's deployment points at the simulator.

Every adapter registered in `lockgate.providers.registry` adds one `Case` here; the suite in
`test_conformance.py` runs every test against every case, through the gateway, with the
official `openai` SDK as the client and the simulator speaking the provider's wire format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Imported here, not on the first gateway's event loop: adapters load when a config first
# names them, which the server does once at start-up (botocore's import reads files).
import lockgate.providers.bedrock.client  # noqa: F401
from lockgate.providers.simulator import Simulator
from tests.conftest import PROVIDER_KEY


@dataclass(frozen=True)
class Case:
    provider: str
    # The deployment config (without `model`) that sends this provider's wire format to `sim`.
    deployment: Callable[[Simulator], dict[str, Any]]
    # The path a chat request reaches the simulator on, for the given upstream model name.
    chat_path: Callable[[str, bool], str]
    # What the upstream answers when the gateway's key is refused (some providers say 403).
    auth_status: int = 401
    # The status the provider uses for "overloaded" (Anthropic: 529; most: 503).
    overloaded_status: int = 503


def _openai(sim: Simulator) -> dict[str, Any]:
    return {"provider": "openai", "api_base": sim.base_url, "api_key": PROVIDER_KEY}


def _anthropic(sim: Simulator) -> dict[str, Any]:
    # The suite's simulated model has a 4,000-token context window and Anthropic refuses a
    # prompt plus max_tokens beyond it, so requests without max_tokens need a default cap
    # that fits (the adapter's own default, 4096, is sized for Claude's 200k windows).
    return {
        "provider": "anthropic",
        "api_base": sim.root_url,
        "api_key": PROVIDER_KEY,
        "default_max_tokens": 1024,
    }


def _gemini(sim: Simulator) -> dict[str, Any]:
    return {"provider": "gemini", "api_base": f"{sim.root_url}/v1beta", "api_key": PROVIDER_KEY}


def _gemini_path(model: str, stream: bool) -> str:
    method = "streamGenerateContent" if stream else "generateContent"
    return f"/v1beta/models/{model}:{method}"


def _azure(sim: Simulator) -> dict[str, Any]:
    return {"provider": "azure", "api_base": sim.root_url, "api_key": PROVIDER_KEY}


def _bedrock(sim: Simulator) -> dict[str, Any]:
    # The simulator's `api_key` is the access key id the SigV4 signature names.
    return {
        "provider": "bedrock",
        "api_base": sim.root_url,
        "region": "us-east-1",
        "aws_access_key_id": PROVIDER_KEY,
        "aws_secret_access_key": "simulated-secret-access-key",
    }


CASES: dict[str, Case] = {
    case.provider: case
    for case in (
        Case("openai", _openai, lambda model, stream: "/v1/chat/completions"),
        Case("anthropic", _anthropic, lambda model, stream: "/v1/messages", overloaded_status=529),
        # Gemini answers PERMISSION_DENIED (403) to a caller whose key it does not accept.
        Case("gemini", _gemini, _gemini_path, auth_status=403, overloaded_status=503),
        Case(
            "azure",
            _azure,
            lambda model, stream: f"/openai/deployments/{model}/chat/completions",
        ),
        Case(
            "bedrock",
            _bedrock,
            lambda model, stream: f"/model/{model}/converse" + ("-stream" if stream else ""),
            auth_status=403,
        ),
    )
}
