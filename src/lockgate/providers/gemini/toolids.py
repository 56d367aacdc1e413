"""Tool call ids for Gemini function calls, carrying Gemini's thought signature.

Gemini's function calls have no id (OpenAI's tool calls need one), and thinking models
attach a `thoughtSignature` to a call that must come back with it on the next turn. The id
lockgate makes is `call_<random>`, followed by `__thought__<signature>` when Gemini sent
one: clients echo tool call ids verbatim, so the signature survives the round trip.
"""

from __future__ import annotations

import secrets

_MARK = "__thought__"


def new_call_id(signature: str | None = None) -> str:
    call_id = f"call_{secrets.token_hex(12)}"
    return f"{call_id}{_MARK}{signature}" if signature else call_id


def split_call_id(call_id: str) -> str | None:
    """The thought signature a tool call id carries, if any."""
    _, mark, signature = call_id.partition(_MARK)
    return signature if mark and signature else None
