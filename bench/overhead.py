"""lockgate overhead benchmark: the gateway against the same upstream called directly.

    .venv/bin/python bench/overhead.py [--quick] [--upstream auto|simulator|bench]

In one session it starts an upstream (lockgate's provider simulator, or the minimal
`bench/upstream.py`), then the gateway, and measures with wrk and `bench/stream_load.py`:

- non-streaming at 1, 16, 64 and 256 connections, upstream delay 0;
- 256 connections with a 200 ms upstream (the gateway must keep up with the direct RPS);
- streaming at 16 concurrent streams: the time to the first `data:` chunk (TTFT);
- the gateway's CPU per request (/proc/PID/stat utime+stime over each run), its RSS after
  the run (VmRSS) and its start-up time (spawn to `/health/ready` answering 200).

Placement: the gateway runs alone on core 0; wrk, the stream client, the upstream(s),
the spend ledger's writer process (`database.writer_cpus`) and this script run on core 1.
Direct runs keep the same placement, so that "added latency" is the gateway's alone.
Every direct run is immediately followed by its gateway run.

It prints PASS/FAIL for each target and rewrites `bench/RESULTS.md`, including the
stack-choice table from `bench/stacks/results.json` (made by `bench/stacks/run_stacks.py`).
Every process it starts is stopped on exit, error or Ctrl-C; every load run is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.metadata
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

import benchlib
from benchlib import BENCH, ROOT, BenchError, Measured, Service

GATEWAY_CORE = "0"
LOAD_CORE = "1"
API_KEY = "sk-bench"
SLOW_DELAY_MS = 200
STREAM_TTFT_MS = 20
STREAM_INTER_TOKEN_MS = 2
STREAM_TOKENS = 16
RESULTS = BENCH / "RESULTS.md"
STACKS_JSON = BENCH / "stacks" / "results.json"

#: Model groups the gateway serves, one per upstream role; upstreams see `gpt-4o-mini`.
UPSTREAM_MODEL = "gpt-4o-mini"
FAST, SLOW, STREAM = "gpt-4o-mini", "bench-slow", "bench-stream"


@dataclass(frozen=True)
class Plan:
    duration: float  # seconds per wrk run
    stream_duration: float  # seconds per streaming run
    warmup: float  # seconds of unmeasured load before a new connection count
    startups: int  # gateway spawns timed (the last one serves the load)
    # The 200 ms scenario's target is about steady state: wrk opens all 256 connections at
    # once, and that first synchronized wave weighs ~2.5% of a 10 s run's requests. It runs
    # longer too, and both runs are reported (the waves persist: see RESULTS.md).
    slow_duration: float
    # Latency targets at c1 and c16 compare two noisy tails: each pair is measured this many
    # times and the median round (by the figure the target reads) is reported.
    latency_rounds: int
    concurrencies: tuple[int, ...] = (1, 16, 64, 256)


FULL = Plan(
    duration=10, stream_duration=10, warmup=1, startups=3, slow_duration=30, latency_rounds=3
)
QUICK = Plan(
    duration=3, stream_duration=3, warmup=1, startups=1, slow_duration=10, latency_rounds=1
)


# ----------------------------------------------------------------------------- upstreams


def simulator_available() -> bool:
    try:
        return importlib.util.find_spec("lockgate.providers.simulator.__main__") is not None
    except ImportError:
        return False


def simulator_argv(port: int, role: str, workers: int) -> list[str]:
    """lockgate's provider simulator for one upstream role (see its cli.py for the flags)."""
    argv = [sys.executable, "-m", "lockgate.providers.simulator", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    if role == SLOW:
        return [*argv, "--latency", f"{SLOW_DELAY_MS}ms"]
    if role == STREAM:
        return [
            *argv,
            "--latency",
            "0ms",
            "--ttft",
            f"{STREAM_TTFT_MS}ms",
            "--inter-token",
            f"{STREAM_INTER_TOKEN_MS}ms",
        ]
    return [*argv, "--latency", "0ms"]


def bench_upstream_argv(port: int, role: str, workers: int) -> list[str]:
    argv = [sys.executable, str(BENCH / "upstream.py"), "--port", str(port)]
    argv += ["--workers", str(workers), "--tokens", str(STREAM_TOKENS)]
    if role == SLOW:
        return [*argv, "--delay-ms", str(SLOW_DELAY_MS)]
    if role == STREAM:
        argv += ["--ttft-ms", str(STREAM_TTFT_MS)]
        return [*argv, "--inter-token-ms", str(STREAM_INTER_TOKEN_MS)]
    return argv


def upstream_description(kind: str) -> str:
    what = (
        "lockgate's provider simulator (`python -m lockgate.providers.simulator`)"
        if kind == "simulator"
        else "the minimal aiohttp upstream `bench/upstream.py`"
    )
    return (
        f"{what}; three instances, all on core 1: delay 0 (non-streaming), delay "
        f"{SLOW_DELAY_MS} ms, and a streaming one (first token after {STREAM_TTFT_MS} ms, "
        f"then {STREAM_TOKENS} content chunks {STREAM_INTER_TOKEN_MS} ms apart)"
    )


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Pair:
    """One scenario measured directly against the upstream and through the gateway."""

    label: str
    connections: int
    direct: Measured
    gateway: Measured

    @property
    def added_p50_ms(self) -> float:
        return self.gateway.wrk.p50_ms - self.direct.wrk.p50_ms

    @property
    def added_p99_ms(self) -> float:
        return self.gateway.wrk.p99_ms - self.direct.wrk.p99_ms

    @property
    def rps_ratio(self) -> float:
        return self.gateway.wrk.rps / self.direct.wrk.rps if self.direct.wrk.rps else 0.0


#: The figure each latency target reads, by connection count.
LATENCY_TARGETS: dict[int, Callable[[Pair], float]] = {
    1: lambda p: p.added_p50_ms,
    16: lambda p: p.added_p99_ms,
}


@dataclass(frozen=True)
class StreamPair:
    direct: dict[str, object]
    gateway: dict[str, object]
    gateway_cpu_s: float
    foreign_cpu_s: float = 0.0
    foreign_top: str = ""

    def get(self, side: str, key: str) -> float:
        value = (self.direct if side == "direct" else self.gateway)[key]
        assert isinstance(value, int | float)
        return float(value)

    @property
    def added_ttft_p50_ms(self) -> float:
        return self.get("gateway", "ttft_p50_ms") - self.get("direct", "ttft_p50_ms")

    @property
    def cpu_ms_per_stream(self) -> float:
        streams = self.get("gateway", "streams")
        return 1000 * self.gateway_cpu_s / streams if streams else float("nan")


@dataclass(frozen=True)
class Check:
    name: str
    measured: str
    ok: bool


@dataclass
class Report:
    command: str
    plan: Plan
    quick: bool
    upstream_kind: str
    upstream_workers: int
    started: str = ""
    load_before: str = ""
    startup_s: list[float] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    slow: Pair | None = None
    slow_short: Pair | None = None
    rounds: dict[int, list[float]] = field(default_factory=dict)  # connections -> added ms
    stream: StreamPair | None = None
    rss_mb: float = 0.0
    elapsed_s: float = 0.0

    def pair(self, connections: int) -> Pair:
        return next(p for p in self.pairs if p.connections == connections)

    def rounds_note(self, connections: int) -> str:
        rounds = self.rounds.get(connections, [])
        if len(rounds) < 2:
            return ""
        return f" (median of {len(rounds)} rounds: {', '.join(f'{r:+.2f}' for r in rounds)})"

    def checks(self) -> list[Check]:
        out: list[Check] = []
        c64 = self.pair(64).gateway
        out.append(
            Check(
                ">= 2,000 req/s at c64 with CPU <= 0.5 ms/request",
                f"{c64.wrk.rps:,.0f} req/s, {c64.cpu_ms_per_request:.3f} ms/req",
                c64.wrk.rps >= 2000 and c64.cpu_ms_per_request <= 0.5 and not c64.wrk.error_count,
            )
        )
        c1 = self.pair(1)
        out.append(
            Check(
                "added p50 <= 0.5 ms at c1",
                f"{c1.added_p50_ms:+.3f} ms{self.rounds_note(1)}",
                c1.added_p50_ms <= 0.5,
            )
        )
        c16 = self.pair(16)
        out.append(
            Check(
                "added p99 <= 3 ms at c16",
                f"{c16.added_p99_ms:+.3f} ms{self.rounds_note(16)}",
                c16.added_p99_ms <= 3,
            )
        )
        if self.stream is not None:
            added = self.stream.added_ttft_p50_ms
            errors = self.stream.get("gateway", "errors") + self.stream.get("direct", "errors")
            out.append(
                Check(
                    "streaming added TTFT p50 <= 1 ms at c16",
                    f"{added:+.3f} ms",
                    added <= 1 and not errors,
                )
            )
        if self.slow is not None:
            s = self.slow
            out.append(
                Check(
                    "c256, 200 ms upstream, steady state: >= 95% of direct req/s, p99 <= 260 ms",
                    f"{s.rps_ratio:.1%} of direct, p99 {s.gateway.wrk.p99_ms:.1f} ms",
                    s.rps_ratio >= 0.95
                    and s.gateway.wrk.p99_ms <= 260
                    and not s.gateway.wrk.error_count,
                )
            )
        out.append(Check("RSS <= 150 MB", f"{self.rss_mb:.1f} MB", self.rss_mb <= 150))
        startup = sorted(self.startup_s)[len(self.startup_s) // 2]
        out.append(Check("start-up <= 2 s", f"{startup:.3f} s (median)", startup <= 2))
        return out

    def disturbances(self) -> list[str]:
        """Runs during which processes outside this benchmark used noticeable CPU."""
        notes = []
        for p in [*self.pairs, *(p for p in (self.slow_short, self.slow) if p)]:
            for side, m in (("direct", p.direct), ("gateway", p.gateway)):
                if disturbed_run(m):
                    notes.append(
                        f"{p.label} {side}: other processes used {m.foreign_cpu_s:.1f} CPU s"
                        f" in {m.wrk.duration_s:.0f} s ({m.foreign_top})"
                    )
        stream = self.stream
        if (
            stream is not None
            and stream.foreign_cpu_s > DISTURBED_SHARE * self.plan.stream_duration
        ):
            notes.append(
                f"streaming gateway run: other processes used {stream.foreign_cpu_s:.1f}"
                f" CPU s ({stream.foreign_top})"
            )
        return notes

    def errors(self) -> list[str]:
        notes = []
        for p in [*self.pairs, *(p for p in (self.slow_short, self.slow) if p)]:
            for side, m in (("direct", p.direct), ("gateway", p.gateway)):
                if m.wrk.error_count:
                    notes.append(f"{p.label} {side}: {m.wrk.errors}")
        return notes


# ----------------------------------------------------------------------------- running

#: A run is "disturbed" when processes outside the benchmark used more CPU than this share
#: of one core during it (the machine may be shared with other people's tests).
DISTURBED_SHARE = 0.05


def disturbed_run(m: Measured) -> bool:
    return m.foreign_cpu_s > DISTURBED_SHARE * m.wrk.duration_s


def gateway_config(path: Path, port: int, upstreams: dict[str, int]) -> Path:
    models = "\n".join(
        f"  - name: {name}\n    deployments:\n"
        f"      - {{provider: openai, model: {UPSTREAM_MODEL}, "
        f"api_base: 'http://127.0.0.1:{up_port}/v1', api_key: sk-up}}"
        for name, up_port in upstreams.items()
    )
    # The spend ledger is on, as by default, with its files in the run's temp dir
    # (LOCKGATE_BENCH_LEDGER=0 turns it off, to measure what it costs). Its writer process
    # runs on the load core, as a database server would (its CPU still counts as the
    # gateway's): sharing the gateway's pinned core slowed the gateway by about a third.
    database = (
        f"database: {{url: 'sqlite:///{path.parent}/lockgate.db', "
        f"spool_path: '{path.parent}/ledger.spool', writer_cpus: [{LOAD_CORE}]}}\n"
        if os.environ.get("LOCKGATE_BENCH_LEDGER", "1") != "0"
        else "database: null\n"
    )
    path.write_text(
        f"server: {{host: 127.0.0.1, port: {port}, master_key: {API_KEY}}}\n{database}"
        f"models:\n{models}\n"
    )
    return path


def run_stream_client(
    url: str, model: str, *, concurrency: int, seconds: float
) -> dict[str, object]:
    argv = [
        "taskset",
        "-c",
        LOAD_CORE,
        sys.executable,
        str(BENCH / "stream_load.py"),
        "--url",
        url,
        "--model",
        model,
        "--key",
        API_KEY,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(seconds),
        "--warmup",
        "1",
    ]
    try:
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 90, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError("stream client did not finish") from exc
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("STREAMJSON ")), None)
    if out.returncode != 0 or line is None:
        raise BenchError(f"stream client failed ({out.returncode}): {out.stderr[-2000:]}")
    result = orjson.loads(line[len("STREAMJSON ") :])
    assert isinstance(result, dict)
    return result


def log(message: str) -> None:
    print(message, flush=True)


class Session:
    """Starts everything a report needs and stops it again (ExitStack)."""

    def __init__(self, args: argparse.Namespace, tmp: Path, stack: contextlib.ExitStack) -> None:
        self.args = args
        self.tmp = tmp
        self.stack = stack
        self.plan = QUICK if args.quick else FULL
        self.upstream_ports: dict[str, int] = {}
        self.upstreams: dict[str, Service] = {}
        self.gateway_port = benchlib.free_port()
        self.gateway: Service | None = None
        self.warmed: set[str] = set()

    def url(self, role: str, *, direct: bool) -> str:
        port = self.upstream_ports[role] if direct else self.gateway_port
        return f"http://127.0.0.1:{port}/v1/chat/completions"

    def script(self, model: str) -> Path:
        body = {**benchlib.CHAT_REQUEST, "model": model}
        return benchlib.write_wrk_script(self.tmp / f"{model}.lua", body, API_KEY)

    def start_upstreams(self, kind: str, workers: int) -> None:
        for role in (FAST, SLOW, STREAM):
            port = benchlib.free_port()
            argv = (simulator_argv if kind == "simulator" else bench_upstream_argv)(
                port, role, workers
            )
            service = Service(f"upstream-{role}", argv, LOAD_CORE, self.tmp, cwd=ROOT)
            self.stack.enter_context(benchlib.running(service))
            self.upstream_ports[role] = port
            self.upstreams[role] = service
        for role, service in self.upstreams.items():
            # Any POST answers readiness: the upstream must serve a real chat completion.
            self._wait_chat(service, self.url(role, direct=True))

    def _wait_chat(self, service: Service, url: str, timeout: float = 20) -> None:
        host, port, path = benchlib.split_url(url)
        body = orjson.dumps({**benchlib.CHAT_REQUEST, "model": UPSTREAM_MODEL})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            service.check_alive()
            conn = http.client.HTTPConnection(host, port, timeout=5)
            try:
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status == 200 and b"choices" in data:
                    return
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.02)
        raise BenchError(f"{service.name} never answered a chat completion: {service.tail()}")

    def gateway_service(self, n: int) -> Service:
        config = gateway_config(
            self.tmp / "lockgate.yaml", self.gateway_port, dict(self.upstream_ports)
        )
        argv = [sys.executable, "-m", "lockgate", "serve", "--config", str(config)]
        argv += ["--port", str(self.gateway_port)]
        return Service(f"gateway-{n}", argv, GATEWAY_CORE, self.tmp, cwd=ROOT)

    def start_gateway(self, report: Report) -> Service:
        ready = f"http://127.0.0.1:{self.gateway_port}/health/ready"
        for n in range(self.plan.startups):
            service = self.gateway_service(n)
            service.start()
            try:
                report.startup_s.append(service.wait_ready(ready))
            except BaseException:
                service.stop()
                raise
            if n < self.plan.startups - 1:
                service.stop()
                time.sleep(0.2)
        self.stack.callback(service.stop)
        self.gateway = service
        return service

    def measure(self, role: str, connections: int, *, direct: bool, seconds: float) -> Measured:
        assert self.gateway is not None
        model = UPSTREAM_MODEL if direct else role
        return benchlib.measure(
            None if direct else self.gateway,
            self.upstreams[role],
            self.url(role, direct=direct),
            connections=connections,
            duration_s=seconds,
            script=self.script(model),
            cores=LOAD_CORE,
        )

    def warm(self, role: str, connections: int) -> None:
        """Warm the gateway at this connection count (it opens upstream connections) and
        each upstream once (the direct path has no pool to grow)."""
        sides = [False] if role in self.warmed else [True, False]
        self.warmed.add(role)
        for direct in sides:
            benchlib.run_wrk(
                self.url(role, direct=direct),
                connections=connections,
                duration_s=self.plan.warmup,
                script=self.script(UPSTREAM_MODEL if direct else role),
                cores=LOAD_CORE,
            )

    def pair(self, label: str, role: str, connections: int, seconds: float | None = None) -> Pair:
        """Direct then gateway; the pair is measured again (up to `--retries` times) when
        processes outside the benchmark used noticeable CPU meanwhile."""
        for attempt in range(self.args.retries + 1):
            self.warm(role, connections)
            run_s = seconds or self.plan.duration
            direct = self.measure(role, connections, direct=True, seconds=run_s)
            gateway = self.measure(role, connections, direct=False, seconds=run_s)
            pair = Pair(label, connections, direct, gateway)
            log(
                f"  {label:<22} direct {direct.wrk.rps:>8,.0f} req/s p50 {direct.wrk.p50_ms:7.2f}"
                f" p99 {direct.wrk.p99_ms:7.2f} | gateway {gateway.wrk.rps:>8,.0f} req/s"
                f" p50 {gateway.wrk.p50_ms:7.2f} p99 {gateway.wrk.p99_ms:7.2f}"
                f" cpu {gateway.cpu_ms_per_request:.3f} ms/req (core use: gateway"
                f" {gateway.busy:.0%}, upstream {gateway.upstream_busy:.0%})"
            )
            disturbed = [(side, m) for side, m in (("direct", direct), ("gateway", gateway))
                         if disturbed_run(m)]  # fmt: skip
            for side, m in disturbed:
                log(
                    f"    warning: other processes used {m.foreign_cpu_s:.1f} CPU s during the"
                    f" {side} run ({m.foreign_top})"
                    + (": measuring again" if attempt < self.args.retries else "")
                )
            if not disturbed:
                break
        return pair

    def stream_pair(self, concurrency: int) -> StreamPair:
        assert self.gateway is not None
        seconds = self.plan.stream_duration
        direct = run_stream_client(
            self.url(STREAM, direct=True), UPSTREAM_MODEL, concurrency=concurrency, seconds=seconds
        )
        machine = benchlib.cpu_snapshot()
        before = self.gateway.cpu_seconds()
        gateway = run_stream_client(
            self.url(STREAM, direct=False), STREAM, concurrency=concurrency, seconds=seconds
        )
        cpu = self.gateway.cpu_seconds() - before
        foreign, top = benchlib.foreign_cpu(
            machine, benchlib.cpu_snapshot(), benchlib.our_processes()
        )
        self.gateway.check_alive()
        result = StreamPair(direct, gateway, cpu, foreign, top)
        log(
            f"  stream c{concurrency:<17} direct TTFT p50 {result.get('direct', 'ttft_p50_ms'):.2f}"
            f" ms | gateway TTFT p50 {result.get('gateway', 'ttft_p50_ms'):.2f} ms"
            f" ({result.get('gateway', 'streams'):.0f} streams,"
            f" {result.get('gateway', 'errors'):.0f} errors)"
        )
        return result


def run(args: argparse.Namespace, report: Report) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="lockgate-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        session = Session(args, Path(tmp), stack)
        log(f"upstream: {upstream_description(report.upstream_kind)}")
        session.start_upstreams(report.upstream_kind, report.upstream_workers)
        gateway = session.start_gateway(report)
        log(f"gateway ready in {', '.join(f'{s:.3f}' for s in report.startup_s)} s")
        for c in session.plan.concurrencies:
            if c not in LATENCY_TARGETS:
                report.pairs.append(session.pair(f"c{c}, delay 0", FAST, c))
                continue
            figure = LATENCY_TARGETS[c]
            rounds = sorted(
                (
                    session.pair(f"c{c}, delay 0", FAST, c)
                    for _ in range(session.plan.latency_rounds)
                ),
                key=figure,
            )
            report.rounds[c] = [figure(p) for p in rounds]
            report.pairs.append(rounds[len(rounds) // 2])
        report.slow_short = session.pair(
            f"c256, delay {SLOW_DELAY_MS} ms, {session.plan.duration:g} s run", SLOW, 256
        )
        report.slow = session.pair(
            f"c256, delay {SLOW_DELAY_MS} ms, {session.plan.slow_duration:g} s run",
            SLOW,
            256,
            seconds=session.plan.slow_duration,
        )
        report.stream = session.stream_pair(16)
        report.rss_mb = sum(benchlib.rss_mb(pid) for pid in benchlib.process_tree(gateway.pid))


# ----------------------------------------------------------------------------- output


def _v(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _wrk_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5)
        first = (out.stdout or out.stderr).splitlines()[0]
        return first.split(" [")[0]
    return "wrk"


def machine_note() -> str:
    return (
        f"{benchlib.cpu_model()}, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') >> 30}"
        f" GiB, Linux {platform.release()}, Python {platform.python_version()}, "
        f"aiohttp {_v('aiohttp')}, uvloop {_v('uvloop')}, orjson {_v('orjson')}, {_wrk_version()}"
    )


def _ms(value: float) -> str:
    return f"{value:.2f}"


def render(report: Report) -> str:
    plan = report.plan
    lines = [
        "# lockgate overhead benchmark",
        "",
        "Written by `bench/overhead.py` (do not edit by hand; `make bench` rewrites it).",
        "",
        f"- Command: `{report.command}`"
        + (" (quick: short runs, indicative only)" if report.quick else ""),
        f"- Date: {report.started}; took {report.elapsed_s:.0f} s",
        f"- Machine: {machine_note()}; load average before the run: {report.load_before}",
        "- Placement: the gateway alone on core 0 (`taskset -c 0`); wrk, the stream client,"
        " the upstreams, the spend ledger's writer process (`database.writer_cpus: [1]`: on"
        " the gateway's own core it slowed the gateway by about a third, far beyond its own"
        " CPU) and the benchmark script on core 1. The writer's CPU counts as the gateway's."
        " Direct runs keep the same placement (core 0 idle), so the difference is the"
        " gateway's.",
        f"- Upstream: {upstream_description(report.upstream_kind)}. One process each"
        f" (`workers={report.upstream_workers}`): with two cores, more upstream processes"
        " would only compete with wrk on core 1. The core-use column shows which side was"
        " saturated in each gateway run: the gateway at ~100% of core 0 with the upstream well"
        " below 100% of core 1 means the gateway, not the upstream, was the limit.",
        f"- Load: wrk `-t1 --latency`, {plan.duration:g} s per run ({plan.slow_duration:g} s for"
        " the 200 ms upstream's steady-state target, so that the first synchronized wave of"
        f" 256 new connections weighs less) after a {plan.warmup:g} s"
        " warm-up at the same connection count; a realistic small chat body (system + user"
        " message, `max_tokens`, `temperature`) with `Authorization: Bearer`. Streaming:"
        f" `bench/stream_load.py`, {plan.stream_duration:g} s after 1 s of warm-up.",
        "- CPU: the gateway's utime+stime (its process and the ledger writer process) from"
        " /proc/PID/stat over the run divided by the"
        " requests wrk completed; RSS: VmRSS after all runs; start-up: spawn to"
        f" `/health/ready` = 200, {len(report.startup_s)} spawn(s).",
        "",
        "## Targets",
        "",
        "| target | measured | result |",
        "|---|---|---|",
    ]
    lines += [
        f"| {c.name} | {c.measured} | {'PASS' if c.ok else '**FAIL**'} |" for c in report.checks()
    ]
    lines += [
        "",
        "## Non-streaming (wrk)",
        "",
        "Latencies in ms. Added = gateway minus direct.",
        "",
        "| scenario | direct req/s | gateway req/s | gw/direct | direct p50 / p90 / p99 |"
        " gateway p50 / p90 / p99 | added p50 | added p99 | gateway CPU ms/req |"
        " core use gateway / upstream (gw run) | other processes' CPU s (direct/gw) |"
        " errors (direct/gw) |",
        "|---|---:|---:|---:|---|---|---:|---:|---:|---|---|---|",
    ]
    for p in [*report.pairs, *(p for p in (report.slow_short, report.slow) if p)]:
        d, g = p.direct.wrk, p.gateway.wrk
        lines.append(
            f"| {p.label} | {d.rps:,.0f} | {g.rps:,.0f} | {p.rps_ratio:.1%} |"
            f" {_ms(d.p50_ms)} / {_ms(d.p90_ms)} / {_ms(d.p99_ms)} |"
            f" {_ms(g.p50_ms)} / {_ms(g.p90_ms)} / {_ms(g.p99_ms)} |"
            f" {p.added_p50_ms:+.2f} | {p.added_p99_ms:+.2f} | {p.gateway.cpu_ms_per_request:.3f} |"
            f" {p.gateway.busy:.0%} / {p.gateway.upstream_busy:.0%} |"
            f" {p.direct.foreign_cpu_s:.1f}/{p.gateway.foreign_cpu_s:.1f} |"
            f" {d.error_count}/{g.error_count} |"
        )
    saturated = [p.label for p in report.pairs if p.gateway.busy >= 0.9]
    if saturated:
        lines += [
            "",
            "wrk is closed-loop: each connection sends its next request as soon as the last one"
            f" is answered. In the runs where the gateway used ~100% of its core"
            f" ({'; '.join(saturated)}) it was saturated, so its latency there is mostly"
            " queueing behind its own CPU (a request waits for the others in flight, at the"
            " CPU ms/req shown each), with CPU stalls such as garbage collection in the tail.",
        ]
    if report.stream is not None:
        s = report.stream
        lines += [
            "",
            "## Streaming (c16, `bench/stream_load.py`)",
            "",
            "| | streams/s | TTFT p50 | TTFT p90 | TTFT p99 | whole stream p50 | errors |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for side in ("direct", "gateway"):
            lines.append(
                f"| {side} | {s.get(side, 'streams_per_s'):.0f} |"
                f" {_ms(s.get(side, 'ttft_p50_ms'))} |"
                f" {_ms(s.get(side, 'ttft_p90_ms'))} | {_ms(s.get(side, 'ttft_p99_ms'))} |"
                f" {_ms(s.get(side, 'total_p50_ms'))} | {s.get(side, 'errors'):.0f} |"
            )
        lines += [
            "",
            f"Added TTFT p50: {s.added_ttft_p50_ms:+.3f} ms; gateway CPU"
            f" {s.cpu_ms_per_stream:.3f} ms per stream ({STREAM_TOKENS + 3} chunks).",
        ]
    lines += [
        "",
        "## Start-up and memory",
        "",
        f"- Start-up (spawn to ready): {', '.join(f'{v:.3f}' for v in report.startup_s)} s",
        f"- Gateway RSS after the run: {report.rss_mb:.1f} MB",
    ]
    notes = report.errors()
    if notes:
        lines += ["", "## Errors", "", *[f"- {n}" for n in notes]]
    disturbed = report.disturbances()
    if disturbed:
        lines += [
            "",
            "## Disturbances",
            "",
            "Processes outside this benchmark used CPU during these runs; their figures are"
            " less trustworthy (rerun on a quiet machine):",
            "",
            *[f"- {n}" for n in disturbed],
        ]
    lines += ["", *stack_section()]
    return "\n".join(lines) + "\n"


def stack_section() -> list[str]:
    lines = ["## Stack choice (`bench/stacks/`)", ""]
    if not STACKS_JSON.exists():
        return [*lines, "Not measured yet: run `bench/stacks/run_stacks.py` (see its docstring)."]
    data = orjson.loads(STACKS_JSON.read_bytes())
    versions = ", ".join(f"{k} {v}" for k, v in data["versions"].items())
    lines += [
        "The same pass-through proxy (orjson parse, key check, forward over a keep-alive pool,"
        " return the upstream body) on each stack, proxy alone on core 0, wrk and"
        f" `bench/upstream.py` on core 1, wrk `-t1 -c{data['connections']}`,"
        f" {data['duration_s']:g} s x {data['rounds']} rounds (median run by req/s shown).",
        f"Measured {data['date']} with `{data['command']}`; {versions}.",
        "",
        f"| stack | req/s @c{data['connections']} | p50 ms | p99 ms | proxy CPU ms/req |"
        " req/s of each round | errors | other processes' CPU s (max run) |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in data["rows"]:
        cpu = r["cpu_ms_per_req"]
        lines.append(
            f"| {r['label']} | {r['rps']:,} | {r['p50_ms']} | {r['p99_ms']} |"
            f" {cpu if cpu is not None else '-'} | {', '.join(map(str, r['rps_all']))} |"
            f" {r['errors']} | {r.get('other_cpu_s', '?')} |"
        )
    return lines


def print_checks(report: Report) -> None:
    log("")
    for check in report.checks():
        log(f"{'PASS' if check.ok else 'FAIL'}  {check.name}: {check.measured}")
    for note in report.errors():
        log(f"ERRORS {note}")
    for note in report.disturbances():
        log(f"DISTURBED {note}")


# ----------------------------------------------------------------------------- main


def command_line() -> str:
    def short(path: str) -> str:
        try:
            return str(Path(path).relative_to(ROOT))
        except ValueError:
            return path

    script = str(Path(sys.argv[0]).resolve())
    return " ".join([short(sys.executable), short(script), *sys.argv[1:]])


@contextlib.contextmanager
def timed(report: Report) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        report.elapsed_s = time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description="lockgate overhead benchmark")
    parser.add_argument("--quick", action="store_true", help="short runs (under a minute)")
    parser.add_argument(
        "--upstream",
        choices=("auto", "simulator", "bench"),
        default="auto",
        help="lockgate's simulator (auto: when installed) or bench/upstream.py",
    )
    parser.add_argument("--upstream-workers", type=int, default=1)
    parser.add_argument(
        "--retries",
        type=int,
        help="re-measure a scenario disturbed by other processes (default: 2, quick: 0)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.retries is None:
        args.retries = 0 if args.quick else 2
    if os.cpu_count() is None or (os.cpu_count() or 0) < 2:
        raise BenchError("needs at least two cores (gateway on core 0, load on core 1)")
    kind = args.upstream
    if kind == "auto":
        kind = "simulator" if simulator_available() else "bench"
    benchlib.pin_self(LOAD_CORE)
    report = Report(
        command=command_line(),
        plan=QUICK if args.quick else FULL,
        quick=args.quick,
        upstream_kind=kind,
        upstream_workers=args.upstream_workers,
        started=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        load_before=" ".join(f"{v:.2f}" for v in os.getloadavg()),
    )
    if os.getloadavg()[0] > 0.5:
        log(f"warning: load average {report.load_before}: other work may disturb the figures")
    with benchlib.sigterm_as_interrupt(), timed(report):
        run(args, report)
    print_checks(report)
    if not args.no_write:
        benchlib.write_section(args.output, "overhead", render(report))
        log(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    benchlib.run_main(main)
