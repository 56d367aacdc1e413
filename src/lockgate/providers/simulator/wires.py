"""The wire formats the simulator serves, tried in order for each POST path."""

from __future__ import annotations

from lockgate.providers.simulator.anthropic_wire import AnthropicWire
from lockgate.providers.simulator.azure_wire import AzureWire
from lockgate.providers.simulator.bedrock_wire import BedrockWire
from lockgate.providers.simulator.gemini_wire import GeminiEmbedContentWire, GeminiWire
from lockgate.providers.simulator.wire import OpenAIWire

WIRES: tuple[OpenAIWire, ...] = (
    OpenAIWire(),
    AnthropicWire(),
    GeminiWire(),
    GeminiEmbedContentWire(),
    AzureWire(),
    BedrockWire(),
)
