"""The gateway as a process: start-up defaults, bind safety, config checks, SIGTERM drain."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import openai
import pytest
import yaml

from lockgate.providers.simulator import Simulator, SimulatorOptions
from tests.integration.gateway_process import clean_env, free_port, run_cli, start_gateway

MASTER = "sk-lifecycle-master-key-0000"


async def write(path: Path, text: str) -> None:
    await asyncio.to_thread(path.write_text, text)


async def test_serve_without_config_or_keys_serves_the_simulator() -> None:
    gw = await start_gateway(env=clean_env(), port=free_port())
    try:
        assert "BUILT-IN PROVIDER SIMULATOR" in gw.log
        async with openai.AsyncOpenAI(
            base_url=f"{gw.url}/v1", api_key="anything", max_retries=0
        ) as client:
            reply = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            assert reply.choices[0].message.content
            models = await client.models.list()
            assert "gpt-4o-mini" in [m.id for m in models.data]
    finally:
        gw.terminate()
        assert await gw.wait() == 0


async def test_refuses_public_address_without_master_key() -> None:
    public = "0.0.0.0"  # noqa: S104 - the point of the test
    code, _, err = await run_cli("serve", "--host", public, "--port", str(free_port()))
    assert code == 2
    assert "refusing to listen on 0.0.0.0 without a master key" in err


async def test_check_config_names_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    await write(
        bad,
        yaml.safe_dump(
            {
                "server": {"port": 4000, "colour": "blue"},
                "models": [
                    {
                        "name": "gpt-4o",
                        "deployments": [
                            {"provider": "openai", "model": "gpt-4o"},
                            {"provider": "openai", "model": "gpt-4o", "api_base": "nope"},
                        ],
                    }
                ],
            }
        ),
    )
    code, _, err = await run_cli("check-config", str(bad))
    assert code == 1
    assert "server.colour: unknown key" in err
    assert "models.gpt-4o.deployments[1].api_base:" in err
    good = tmp_path / "good.yaml"
    await write(
        good,
        "models:\n  - name: m\n    deployments:\n"
        "      - {provider: openai, model: m, api_key: '${OPENAI_API_KEY}'}\n",
    )
    code, _, err = await run_cli("check-config", str(good))
    assert code == 1
    assert "models.m.deployments[0].api_key: environment variable OPENAI_API_KEY is not set" in err
    code, out, _ = await run_cli("check-config", str(good), env=clean_env(OPENAI_API_KEY="sk-x"))
    assert code == 0
    assert "ok (1 models, 1 deployments)" in out


async def test_sigterm_finishes_in_flight_stream_then_exits_0(tmp_path: Path) -> None:
    sim = Simulator(SimulatorOptions(inter_token="100ms", stream_chunks=15))
    url = await sim.start(host="127.0.0.1", port=0)
    config = tmp_path / "lockgate.yaml"
    await write(
        config,
        yaml.safe_dump(
            {
                "server": {"master_key": "${LOCKGATE_MASTER_KEY}"},
                "models": [
                    {
                        "name": "gpt-4o-mini",
                        "deployments": [
                            {"provider": "openai", "model": "gpt-4o-mini", "api_base": url}
                        ],
                    }
                ],
            }
        ),
    )
    started = time.perf_counter()
    gw = await start_gateway(
        "--config", str(config), env=clean_env(LOCKGATE_MASTER_KEY=MASTER), port=free_port()
    )
    startup = time.perf_counter() - started
    try:
        async with openai.AsyncOpenAI(
            base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0
        ) as client:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "long story"}],
                stream=True,
            )
            chunks = []
            async for chunk in stream:
                chunks.append(chunk)
                if len(chunks) == 2:
                    gw.terminate()
            assert chunks[-1].choices[0].finish_reason == "stop"
            assert len(chunks) >= 15
        assert await gw.wait() == 0
        assert "shutting down" in gw.log
        with pytest.raises(aiohttp.ClientConnectionError):
            async with aiohttp.ClientSession() as http:
                await http.get(f"{gw.url}/health/live")
    finally:
        await gw.stop()
        await sim.stop()
    assert startup < 10  # the 2 s target is measured in bench/; this only catches a hang


async def test_sigterm_finishes_in_flight_request(tmp_path: Path) -> None:
    sim = Simulator(SimulatorOptions(latency="1500ms"))
    url = await sim.start(host="127.0.0.1", port=0)
    config = tmp_path / "lockgate.yaml"
    await write(
        config,
        f"models:\n  - name: m\n    deployments:\n      - {{provider: vllm, model: m, "
        f"api_base: '{url}'}}\n",
    )
    gw = await start_gateway("--config", str(config), env=clean_env(), port=free_port())
    try:
        async with openai.AsyncOpenAI(
            base_url=f"{gw.url}/v1", api_key="x", max_retries=0
        ) as client:
            pending = asyncio.ensure_future(
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "slow"}]
                )
            )
            await asyncio.sleep(0.3)
            gw.terminate()
            reply = await pending
            assert reply.choices[0].message.content
        assert await gw.wait() == 0
    finally:
        await gw.stop()
        await sim.stop()
