"""Anthropic Messages API adapter (`provider: anthropic`): OpenAI chat in, Messages out.

Split the pydantic-ai way: `request.py` / `response.py` / `stream.py` are the wire format,
`errors.py` maps Anthropic's errors and rate-limit headers, `client.py` is HTTP and auth.
"""

from lockgate.providers.anthropic.client import Anthropic, from_config

__all__ = ["Anthropic", "from_config"]
