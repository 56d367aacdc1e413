"""Google Gemini (Gemini API, generativelanguage.googleapis.com) as an outbound provider."""

from lockgate.providers.gemini.provider import DEFAULT_API_BASE, Gemini, from_config

__all__ = ["DEFAULT_API_BASE", "Gemini", "from_config"]
