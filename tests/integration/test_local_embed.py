"""`provider: local-embed`: the local all-MiniLM-L6-v2 model served as /v1/embeddings,
offline, through the openai SDK (which asks for base64 unless told otherwise)."""

from __future__ import annotations

import math

import openai
import pytest

from tests.conftest import GatewayFactory

MODEL = {
    "name": "minilm",
    "deployments": [{"provider": "local-embed", "model": "all-MiniLM-L6-v2"}],
}


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_local_embeddings_through_the_sdk(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway([MODEL])
    texts = [
        "What is the capital of France?",
        "Which city is the capital of France?",
        "How do I bake sourdough bread?",
    ]
    async with gw.client() as client:
        result = await client.embeddings.create(model="minilm", input=texts)
        floats = await client.embeddings.create(
            model="minilm", input=texts[0], encoding_format="float"
        )
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="minilm", messages=[{"role": "user", "content": "hi"}]
            )
    vectors = [d.embedding for d in result.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(math.isclose(_cosine(v, v), 1.0, abs_tol=1e-4) for v in vectors)
    assert _cosine(vectors[0], vectors[1]) > 0.9
    assert _cosine(vectors[0], vectors[2]) < 0.5
    assert _cosine(vectors[0], floats.data[0].embedding) == pytest.approx(1.0, abs=1e-5)
    assert result.usage.prompt_tokens > 0
    assert "embeddings only" in caught.value.message
