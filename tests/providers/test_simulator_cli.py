"""`lockgate simulate`: flags and config file, and real processes that stop cleanly on signals."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from lockgate.providers.simulator.cli import add_arguments, run, settings_from_args


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_become_options() -> None:
    options, host, port, workers = settings_from_args(
        _parse(
            "--latency", "lognormal:median=1500ms,p99=20000ms",
            "--ttft", "300ms", "--inter-token", "20ms",
            "--rpm", "600", "--tpm", "100000",
            "--error-rate", "500=0.02", "--error-rate", "503=0.01",
            "--outage", "60:30", "--outage", "300:5", "--outage-mode", "reset",
            "--broken-stream-rate", "0.1", "--context-window", "8192",
            "--api-key", "sk-x", "--model", "a", "--model", "b", "--seed", "7",
        )
    )  # fmt: skip
    assert (host, port, workers) == ("127.0.0.1", 9000, 1)
    assert options.latency == "lognormal:median=1500ms,p99=20000ms"
    assert options.ttft == "300ms" and options.inter_token == "20ms"
    assert (options.rpm, options.tpm) == (600, 100_000)
    assert options.error_rates == {500: 0.02, 503: 0.01}
    assert options.outages == [(60.0, 30.0), (300.0, 5.0)]
    assert options.outage_mode == "reset"
    assert options.broken_stream_rate == 0.1
    assert options.context_window == 8192
    assert options.api_key == "sk-x" and options.models == ["a", "b"] and options.seed == 7


def test_config_file_with_flags_on_top(tmp_path: Path) -> None:
    config = tmp_path / "sim.yaml"
    config.write_text(
        "port: 9100\nworkers: 2\nlatency: 50ms\nrpm: 10\nerror_rates:\n  500: 0.1\n"
        "outages:\n  - [1, 2]\nembedding_dim: 64\n"
    )
    options, host, port, workers = settings_from_args(
        _parse("--config", str(config), "--rpm", "20", "--error-rate", "503=0.2")
    )
    assert (host, port, workers) == ("127.0.0.1", 9100, 2)
    assert options.latency == "50ms" and options.rpm == 20 and options.embedding_dim == 64
    assert options.error_rates == {500: 0.1, 503: 0.2}
    assert options.outages == [(1.0, 2.0)]


def test_bad_settings_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_parse("--latency", "whenever")) == 2
    assert "latency" in capsys.readouterr().err
    config = tmp_path / "bad.yaml"
    config.write_text("- just\n- a list\n")
    assert run(_parse("--config", str(config))) == 2
    with pytest.raises(SystemExit):
        _parse("--error-rate", "500")


async def _serve_and_stop(*flags: str, sig: signal.Signals) -> tuple[str, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lockgate.providers.simulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        banner = (await asyncio.wait_for(proc.stdout.readline(), timeout=15)).decode()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", banner)
        assert match, banner
        url = match.group(0)
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        async with aiohttp.ClientSession() as http:
            for _ in range(4):
                async with http.post(f"{url}/chat/completions", json=body) as resp:
                    assert resp.status == 200
                    assert (await resp.json())["object"] == "chat.completion"
    finally:
        proc.send_signal(sig)
        code = await asyncio.wait_for(proc.wait(), timeout=15)
    return banner, code


async def test_single_process_serves_until_sigint() -> None:
    banner, code = await _serve_and_stop("--rpm", "1000", sig=signal.SIGINT)
    assert "(1 worker)" in banner and "rpm 1000" in banner
    assert code == 0


async def test_workers_share_the_port_and_stop_on_sigterm() -> None:
    banner, code = await _serve_and_stop("--workers", "2", sig=signal.SIGTERM)
    assert "2 workers" in banner and "faults: none" in banner
    assert code == 0
