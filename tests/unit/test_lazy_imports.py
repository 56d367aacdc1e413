"""A gateway without Redis or PostgreSQL does not load their clients (memory: redis-py
alone pulls in OpenTelemetry's SDK, about 20 MB of a process's RSS)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

CONFIG = """
server: {host: 127.0.0.1, port: 4000, master_key: sk-test}
database: {url: 'sqlite:///%s'}
models:
  - name: m
    deployments:
      - {provider: openai, model: gpt-4o-mini, api_base: 'http://127.0.0.1:9/v1', api_key: k}
"""

PROBE = """
import sys, orjson
from lockgate.app import build_app
from lockgate.config.loader import load_config
build_app(load_config(sys.argv[1]))
wanted = ("redis", "asyncpg", "opentelemetry", "botocore", "llama_cpp")
print(orjson.dumps([name for name in wanted if name in sys.modules]).decode())
"""


def test_a_sqlite_gateway_loads_no_redis_postgres_or_tracing_client(tmp_path: Path) -> None:
    config = tmp_path / "lockgate.yaml"
    config.write_text(CONFIG % (tmp_path / "ledger.db"))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(config)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert orjson.loads(out.stdout.splitlines()[-1]) == []
