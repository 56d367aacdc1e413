"""The provider simulator: an OpenAI-compatible HTTP server with configurable faults."""

from lockgate.providers.simulator.options import SimulatorOptions
from lockgate.providers.simulator.records import RequestRecord
from lockgate.providers.simulator.server import Simulator

__all__ = ["RequestRecord", "Simulator", "SimulatorOptions"]
