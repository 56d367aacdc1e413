"""`lockgate bench`: a provider profiler that loads a model through the gateway (or an
OpenAI-compatible upstream directly) and reports latency, errors, limits, tokens and cost."""

from lockgate.profiler.options import BenchOptions
from lockgate.profiler.run import profile

__all__ = ["BenchOptions", "profile"]
