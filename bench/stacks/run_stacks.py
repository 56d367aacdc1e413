"""Stack choice: the same pass-through proxy on several server/client stacks, same load.

Every candidate proxy (see this folder) parses the JSON body with orjson, checks the key,
forwards the body to the same upstream (`bench/upstream.py`, delay 0) over a keep-alive
pool and returns the upstream's body. The proxy runs alone on core 0; wrk (`-t1 -c64`,
`--latency`) and the upstream share core 1. CPU per request comes from the proxy's
/proc/PID/stat utime+stime (all threads, all worker processes) over the run.

The candidates need packages the project does not depend on, so they run from a separate
virtualenv:

    python3 -m venv /tmp/stackvenv
    /tmp/stackvenv/bin/pip install aiohttp uvloop orjson 'uvicorn[standard]' granian httpx
    /tmp/stackvenv/bin/python bench/stacks/run_stacks.py [--duration 10] [--rounds 3]

Results go to bench/stacks/results.json (read by bench/overhead.py for RESULTS.md) and
are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

STACKS = Path(__file__).resolve().parent
sys.path.insert(0, str(STACKS.parent))

import benchlib  # noqa: E402
from benchlib import Service  # noqa: E402

PROXY_CORE = "0"
LOAD_CORE = "1"


@dataclass(frozen=True)
class Candidate:
    key: str
    label: str
    argv: list[str]


def candidates(py: str, port: int) -> list[Candidate]:
    granian = [
        py,
        "-m",
        "granian",
        "--loop",
        "uvloop",
        "--workers",
        "1",
        "--runtime-threads",
        "1",
        "--http",
        "1",
        "--no-ws",
        "--log-level",
        "warning",
        "--backlog",
        "4096",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--working-dir",
        str(STACKS),
    ]
    return [
        Candidate(
            "aiohttp",
            "(a) aiohttp server + aiohttp client + uvloop",
            [py, str(STACKS / "proxy_aiohttp.py"), "--port", str(port)],
        ),
        Candidate(
            "uvicorn",
            "(b) uvicorn (uvloop, httptools) raw ASGI + aiohttp client",
            [
                py,
                "-m",
                "uvicorn",
                "proxy_asgi:app",
                "--app-dir",
                str(STACKS),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
                "--backlog",
                "4096",
                "--lifespan",
                "on",
                "--port",
                str(port),
            ],
        ),
        Candidate(
            "granian-asgi",
            "(c) granian ASGI (uvloop) + aiohttp client",
            [*granian, "--interface", "asgi", "proxy_asgi:app"],
        ),
        Candidate(
            "granian-rsgi",
            "(c) granian RSGI (uvloop) + aiohttp client",
            [*granian, "--interface", "rsgi", "proxy_rsgi:app"],
        ),
        Candidate(
            "aiohttp-httpx",
            "(d) aiohttp server + httpx client + uvloop",
            [py, str(STACKS / "proxy_aiohttp.py"), "--port", str(port), "--client", "httpx"],
        ),
    ]


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def _row(
    key: str, label: str, runs: list[benchlib.Measured], rss: float | None
) -> dict[str, object]:
    best = sorted(runs, key=lambda m: m.wrk.rps)[len(runs) // 2]  # the median run by RPS
    return {
        "key": key,
        "label": label,
        "rps": round(best.wrk.rps),
        "rps_all": [round(m.wrk.rps) for m in runs],
        "p50_ms": round(best.wrk.p50_ms, 2),
        "p99_ms": round(best.wrk.p99_ms, 2),
        "cpu_ms_per_req": round(best.cpu_ms_per_request, 3) if key != "direct" else None,
        "cpu_ms_per_req_all": [round(m.cpu_ms_per_request, 3) for m in runs],
        "upstream_busy": round(statistics.median(m.upstream_busy for m in runs), 2),
        "errors": sum(m.wrk.error_count for m in runs),
        "other_cpu_s": round(max(m.foreign_cpu_s for m in runs), 1),
        "rss_mb": round(rss, 1) if rss is not None else None,
    }


def markdown(rows: list[dict[str, object]]) -> str:
    lines = [
        "| stack | req/s @c64 | p50 ms | p99 ms | proxy CPU ms/req | upstream core use | errors |"
        " other processes' CPU s (max run) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cpu = r["cpu_ms_per_req"]
        lines.append(
            f"| {r['label']} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | "
            f"{cpu if cpu is not None else '-'} | {r['upstream_busy']:.0%} | {r['errors']} |"
            f" {r['other_cpu_s']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="pass-through proxy stack comparison")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=1, help="runs per stack (median kept)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--only", nargs="*", help="candidate keys to run")
    parser.add_argument("--out", type=Path, default=STACKS / "results.json")
    args = parser.parse_args()
    benchlib.pin_self(LOAD_CORE)
    py = sys.executable
    rows: list[dict[str, object]] = []
    with (
        tempfile.TemporaryDirectory(prefix="lockgate-stacks-") as tmp,
        benchlib.sigterm_as_interrupt(),
    ):
        tmpdir = Path(tmp)
        script = benchlib.write_wrk_script(tmpdir / "chat.lua", benchlib.CHAT_REQUEST, "sk-bench")
        up_port, proxy_port = benchlib.free_port(), benchlib.free_port()
        upstream = Service(
            "upstream",
            [py, str(STACKS.parent / "upstream.py"), "--port", str(up_port)],
            LOAD_CORE,
            tmpdir,
        )
        up_url = f"http://127.0.0.1:{up_port}/v1/chat/completions"
        with benchlib.running(upstream):
            upstream.wait_ready(f"http://127.0.0.1:{up_port}/health")
            benchlib.warm_up(up_url, script)
            runs = [
                benchlib.measure(
                    None,
                    upstream,
                    up_url,
                    connections=args.connections,
                    duration_s=args.duration,
                    script=script,
                )
                for _ in range(args.rounds)
            ]
            rows.append(_row("direct", "upstream alone (no proxy), for reference", runs, None))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
            for cand in candidates(py, proxy_port):
                if args.only and cand.key not in args.only:
                    continue
                proxy = Service(
                    cand.key,
                    cand.argv,
                    PROXY_CORE,
                    tmpdir,
                    env={"BENCH_UPSTREAM": up_url, "PYTHONPATH": str(STACKS)},
                    cwd=STACKS,
                )
                url = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
                with benchlib.running(proxy):
                    proxy.wait_ready(f"http://127.0.0.1:{proxy_port}/health/ready")
                    benchlib.warm_up(url, script, connections=args.connections, seconds=2)
                    runs = []
                    for _ in range(args.rounds):
                        runs.append(
                            benchlib.measure(
                                proxy,
                                upstream,
                                url,
                                connections=args.connections,
                                duration_s=args.duration,
                                script=script,
                            )
                        )
                        time.sleep(0.5)
                    rss = sum(benchlib.rss_mb(pid) for pid in benchlib.process_tree(proxy.pid))
                    rows.append(_row(cand.key, cand.label, runs, rss))
                print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([Path(py).name, *sys.argv]),
        "machine": f"{platform.machine()}, {benchlib.cpu_model()}, Linux {platform.release()}",
        "python": platform.python_version(),
        "versions": {
            name: _version(name)
            for name in ("aiohttp", "uvloop", "orjson", "uvicorn", "httptools", "granian", "httpx")
        },
        "duration_s": args.duration,
        "rounds": args.rounds,
        "connections": args.connections,
        "rows": rows,
    }
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print()
    print(markdown(rows))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    benchlib.run_main(main)
