"""The cache's parts on their own: keys, answer assembly and replay, the byte-bounded LRU,
the semantic index and the config rules."""

from __future__ import annotations

import numpy as np
import pytest

from lockgate.config.loader import parse_config
from lockgate.config.schema import CacheStoreConfig
from lockgate.features.cache.answers import assemble, replay, storable
from lockgate.features.cache.backend import MemoryBackend
from lockgate.features.cache.keys import CacheKey, literals, request_digest
from lockgate.features.cache.semantic import SemanticIndex

ASK = [{"role": "user", "content": "hello"}]


def _digest(**body: object) -> str:
    return request_digest("key:k", "default", "m", {"model": "m", "messages": ASK, **body})


def test_delivery_and_bookkeeping_fields_do_not_change_the_key() -> None:
    base = _digest(temperature=0)
    assert _digest(temperature=0, stream=True, stream_options={"include_usage": True}) == base
    assert _digest(temperature=0, user="u", metadata={"a": "b"}, store=True) == base
    for changed in (
        {"temperature": 0.5},
        {"temperature": 0, "max_tokens": 5},
        {"temperature": 0, "tools": [{"type": "function", "function": {"name": "f"}}]},
        {"temperature": 0, "tool_choice": "none"},
        {"temperature": 0, "response_format": {"type": "json_object"}},
        {"temperature": 0, "seed": 3},
    ):
        assert _digest(**changed) != base
    assert request_digest("key:other", "default", "m", {"model": "m", "messages": ASK}) != (
        request_digest("key:k", "default", "m", {"model": "m", "messages": ASK})
    )


def _completion(finish: str = "stop", **message: object) -> dict[str, object]:
    msg = {"role": "assistant", "content": "Hello there, friend.", **message}
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }


def test_what_is_worth_storing() -> None:
    allow = CacheStoreConfig()
    assert storable(_completion(), allow)
    assert not storable(_completion("length"), allow)
    assert storable(_completion("length"), CacheStoreConfig(truncated=True))
    assert not storable(_completion("content_filter"), allow)
    assert not storable(_completion(refusal="I can't help with that."), allow)
    call = {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    assert not storable(_completion("tool_calls", tool_calls=[call]), allow)
    assert storable(_completion("tool_calls", tool_calls=[call]), CacheStoreConfig(tool_calls=True))
    assert not storable({"choices": []}, allow)


def test_replay_then_assemble_gives_the_answer_back() -> None:
    call = {"id": "t", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    body = _completion("tool_calls", content="x" * 150, tool_calls=[call])
    chunks = replay(body)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == body["usage"]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    again = assemble(chunks)
    assert again is not None
    assert again["choices"][0]["message"]["content"] == "x" * 150
    assert again["choices"][0]["message"]["tool_calls"] == [call]
    assert again["choices"][0]["finish_reason"] == "tool_calls"
    assert again["usage"] == body["usage"]
    assert assemble(chunks[:-2]) is None  # no finish reason: an unfinished stream


async def test_memory_backend_is_bounded_by_bytes_least_recently_used_first() -> None:
    backend = MemoryBackend(max_bytes=3 * (1000 + 200))
    keys = [CacheKey("default", "m", str(i)) for i in range(4)]
    for key in keys[:3]:
        await backend.set(key, b"x" * 1000, ttl=60)
    assert await backend.get(keys[0]) is not None  # now the most recently used
    await backend.set(keys[3], b"y" * 1000, ttl=60)
    assert await backend.get(keys[1]) is None
    assert all([await backend.get(k) is not None for k in (keys[0], keys[2], keys[3])])
    assert backend.bytes <= backend.max_bytes
    await backend.set(CacheKey("default", "m", "huge"), b"z" * 10_000, ttl=60)
    assert (await backend.stats())["entries"] == 3
    assert await backend.purge("default", "other") == 0
    assert await backend.purge(None, "m") == 3
    assert backend.bytes == 0


def test_semantic_index_is_per_bucket_thresholded_and_bounded() -> None:
    index = SemanticIndex(max_entries=3)
    unit = np.eye(4, dtype=np.float32)
    keys = [CacheKey("default", "m", f"d{i}") for i in range(4)]
    index.add("b1", keys[0], unit[0])
    index.add("b1", keys[1], unit[1])
    index.add("b2", keys[2], unit[0])
    near = (unit[0] * 0.95 + unit[2] * 0.31).astype(np.float32)
    assert index.search("b1", near, 0.9) == (keys[0], pytest.approx(0.95))
    assert index.search("b1", unit[2], 0.9) is None
    assert index.search("b3", unit[0], 0.1) is None
    index.add("b1", keys[3], unit[3])  # over the bound: the oldest goes
    assert len(index) == 3
    assert index.search("b1", unit[0], 0.9) is None
    assert index.search("b1", unit[1], 0.9) == (keys[1], pytest.approx(1.0))
    index.purge(None, "m")
    assert len(index) == 0


def test_config_rules() -> None:
    base = {"models": [{"name": "m", "deployments": [{"provider": "openai", "model": "m"}]}]}
    with pytest.raises(Exception, match="needs the top-level 'redis:'"):
        parse_config({**base, "cache": {"backend": "redis"}}, env={})
    bad = {
        "models": [
            {
                "name": "m",
                "deployments": [{"provider": "openai", "model": "m"}],
                "cache": {"semantic": {"enabled": True, "embedding_model": "nope"}},
            }
        ]
    }
    with pytest.raises(Exception, match="embedding_model"):
        parse_config({**bad, "cache": {}}, env={})
    with pytest.raises(Exception, match="backend"):
        parse_config({**base, "cache": {"backend": "memcached"}}, env={})


def test_numbers_and_negations_must_match_for_a_semantic_hit() -> None:
    assert literals("What is 17 times 23?") != literals("What is 17 times 24?")
    assert literals("What is 17 times 23?") == literals("Compute 23 times 17, please.")
    assert literals("Is it safe with alcohol?") != literals("Is it safe without alcohol?")
    assert literals("It isn't red") != literals("It is red")
    assert literals("Which city is the capital of France?") == literals("France's capital?")
