"""Run `lockgate` as a real process for lifecycle tests."""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass, field

import aiohttp

PROVIDER_ENV_KEYS = (
    "OPENAI_API_KEY", "GROQ_API_KEY", "TOGETHER_API_KEY", "DEEPSEEK_API_KEY",
    "MISTRAL_API_KEY", "OPENROUTER_API_KEY", "LOCKGATE_MASTER_KEY",
)  # fmt: skip


# Gateways run here, so that what they keep in their working directory by default (the
# SQLite database, the ledger spool) stays out of the source tree.
WORKDIR = tempfile.mkdtemp(prefix="lockgate-test-gateways-")
atexit.register(shutil.rmtree, WORKDIR, True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV_KEYS}
    env.update(extra)
    return env


@dataclass
class GatewayProcess:
    proc: asyncio.subprocess.Process
    url: str
    output: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    async def _collect(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.output.append(line.decode(errors="replace"))

    @property
    def log(self) -> str:
        return "".join(self.output)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float = 20) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, timeout)
        return code

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lockgate", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env or clean_env(), cwd=WORKDIR,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def start_gateway(*args: str, env: dict[str, str], port: int) -> GatewayProcess:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lockgate", "serve", "--port", str(port), *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env, cwd=WORKDIR,
    )  # fmt: skip
    gw = GatewayProcess(proc=proc, url=f"http://127.0.0.1:{port}")
    gw._reader = asyncio.get_running_loop().create_task(gw._collect())
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            if proc.returncode is not None:
                break
            try:
                async with http.get(f"{gw.url}/health/ready") as resp:
                    if resp.status == 200:
                        return gw
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    await gw.stop()
    raise AssertionError(f"gateway did not become ready:\n{gw.log}")
