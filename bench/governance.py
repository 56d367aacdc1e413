"""What governance costs: auth by virtual key, rate limits, a budget and the spend ledger,
against the core path, at concurrency 64, measured as `bench/overhead.py` measures.

    .venv/bin/python bench/governance.py [--seconds 10] [--rounds 3]
        [--redis redis://127.0.0.1:6379/0] [--postgres postgresql://...:5432/test]
        [--upstream lean|simulator] [--variants memory,...] [--record]
        [--against REV [--variants memory,ledger only,...]]

The gateway runs alone on core 0 (`taskset -c 0`); wrk (`-t1 -c64`), the upstream, Redis,
PostgreSQL and the ledger's writer process (the `writer_cpus` setting, for SQLite and
PostgreSQL alike) on core 1. Redis and PostgreSQL, when local, are pinned there for the
run, their backends included, and given their affinity back at the end: left to the
scheduler, PostgreSQL's backend ran on the gateway's core too. The writer's CPU counts as
the gateway's.

The upstream is `bench/lean_upstream.py` (a fixed chat completion from a bare asyncio
protocol) unless ``--upstream simulator`` asks for lockgate's provider simulator. With the
simulator, the load core ran out before the gateway's core: the simulator cost it about as
much CPU per request as the gateway costs its own, and the writer, PostgreSQL and Redis
come on top in the governance variants, so the drop measured the load core's spare CPU
(docs/governance.md, 2026-12-07). With the lean upstream the gateway's core is the one
saturated at c64, so requests/s measure the gateway's CPU per request. Variants, each a
fresh gateway (started, warmed 2 s, measured ``--seconds``, stopped), once a round, each
run between two runs of `core` (core, ledger only, core, memory, core, ...): its drop is
against the mean of those two, which cancels the machine's drift over the minute they
span (``--variants`` runs only those named, with core). Each variant's median is reported:

- `core`: master key, `database: null`: no key lookup, no limits, no ledger;
- `ledger only`: master key with the SQLite ledger (the default set-up);
- `memory`: SQLite, and a virtual key (cached) with key RPM and TPM limits, a team TPM
  limit and a monthly key budget, all far above the load: in-process limits and budgets,
  a ledger row per request;
- `redis+postgres` (with --redis and --postgres): the same key on a fresh PostgreSQL
  database (dropped at the end) with limits and budgets in Redis (keys under a fresh
  prefix, deleted at the end).

With ``--against REV`` it compares instead this tree with git revision REV (checked out
in a temporary worktree, run from its ``src``) on the ``--variants`` named (default
memory): each round runs both, in alternating order, and prints the median of the
within-pair differences in requests/s and in the gateway process's CPU per request (its
ledger writer apart). This machine's speed drifts by more than a small change between
runs minutes apart; pairs of runs seconds apart see through it.

Prints requests/s per variant and the drop against `core` (target: less than 20%): the
median of the drops of its rounds; and how busy the load core was. When it
is near 100% while the gateway's is not, the load core (wrk, the upstream, Redis,
PostgreSQL, the writer) was the limit, and the drop measures the machine's CPU per
request more than the gateway's. The last table splits each variant's CPU per request by
process (bench/cpu_split.py): the gateway, its writer, the upstream, wrk (with this
script), PostgreSQL, Redis and anything else that ran. ``--record`` writes that summary
into bench/RESULTS.md (its `governance` section), with the command and the revision.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

import benchlib
import cpu_split
from benchlib import BENCH, ROOT, BenchError, Service

GATEWAY_CORE, LOAD_CORE = "0", "1"
MASTER = "sk-bench-master"
CONNECTIONS = 64
BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


def _config(path: Path, port: int, upstream: int, database: str, redis: str) -> Path:
    path.write_text(
        f"server: {{host: 127.0.0.1, port: {port}, master_key: {MASTER}}}\n"
        f"{database}{redis}models:\n  - name: m\n    deployments:\n"
        f"      - {{provider: openai, model: gpt-4o-mini, "
        f"api_base: 'http://127.0.0.1:{upstream}/v1', api_key: sk-up}}\n"
    )
    return path


def _admin(port: int, method: str, path: str, body: Any) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"}
        conn.request(method, path, orjson.dumps(body), headers)
        resp = conn.getresponse()
        data = orjson.loads(resp.read())
    finally:
        conn.close()
    if resp.status >= 300:
        raise BenchError(f"{method} {path}: {resp.status} {data}")
    return data


def _virtual_key(port: int, team: str) -> str:
    _admin(port, "POST", "/admin/teams", {"id": team, "name": team})
    _admin(port, "PUT", f"/admin/teams/{team}/limits", {"tpm": 10**9})
    created = _admin(port, "POST", "/admin/keys", {"team_id": team})
    key_id = created["id"]
    _admin(port, "PUT", f"/admin/keys/{key_id}/limits", {"rpm": 10**8, "tpm": 10**9})
    _admin(port, "PUT", f"/admin/keys/{key_id}/budgets", {"limit_usd": "1000000"})
    return str(created["key"])


Variants = dict[str, tuple[tuple[str, str], bool]]  # name -> (config sections, virtual key)


@dataclass(frozen=True)
class Run:
    measured: benchlib.Measured
    split: dict[str, float]  # CPU µs a request by role (see cpu_split)

    @property
    def main_us(self) -> float:
        """The gateway's own process (not its ledger writer): CPU µs a request."""
        return self.split.get("gateway", 0.0)


def _variant(
    tmp: Path, upstream: Service, upstream_port: int, name: str, sections: tuple[str, str],
    virtual: bool, seconds: float, n: int, source: Path | None = None,
) -> Run:  # fmt: skip
    """One gateway run; ``source``: another checkout's ``src`` to run instead of this one."""
    port = benchlib.free_port()
    config = _config(tmp / f"{name}-{n}.yaml".replace(" ", "_"), port, upstream_port, *sections)
    argv = [sys.executable, "-m", "lockgate", "serve", "--config", str(config)]
    env = {"PYTHONPATH": str(source)} if source is not None else None
    gateway = Service(f"gateway-{n}", argv, GATEWAY_CORE, tmp, env=env, cwd=ROOT)
    with benchlib.running(gateway):
        gateway.wait_ready(f"http://127.0.0.1:{port}/health/ready")
        key = _virtual_key(port, f"bench{n}") if virtual else MASTER
        script = benchlib.write_wrk_script(tmp / f"wrk-{n}.lua", BODY, key)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        benchlib.warm_up(url, script, connections=CONNECTIONS, seconds=2)
        named = cpu_split.roles(gateway.pid, upstream.pid)
        snap_before = benchlib.cpu_snapshot()
        measured = benchlib.measure(
            gateway, upstream, url, connections=CONNECTIONS, duration_s=seconds,
            script=script, cores=LOAD_CORE,
        )  # fmt: skip
        snap_after = benchlib.cpu_snapshot()
    if measured.wrk.error_count:
        raise BenchError(f"{name}: wrk errors {measured.wrk.errors}")
    return Run(measured, cpu_split.split(snap_before, snap_after, named, measured.wrk.requests))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", help="e.g. redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres", help="e.g. postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--upstream", choices=("lean", "simulator"), default="lean",
        help="lean: bench/lean_upstream.py (default); simulator: lockgate's provider simulator",
    )  # fmt: skip
    parser.add_argument(
        "--against", metavar="REV",
        help="compare this tree with git revision REV instead of the variants with core: "
        "each round runs the chosen variants once on each, in alternating order",
    )  # fmt: skip
    parser.add_argument(
        "--variants",
        help="comma-separated, core aside (default: all; with --against: memory)",
    )
    parser.add_argument(
        "--record", action="store_true", help="write the summary into bench/RESULTS.md"
    )
    args = parser.parse_args()
    if args.against:
        return _compare(args)
    started = time.time()
    with (
        tempfile.TemporaryDirectory(prefix="lockgate-gov-") as tmp_name,
        contextlib.ExitStack() as stack,
    ):
        tmp = Path(tmp_name)
        upstream, up_port, variants = _setting(tmp, stack, args)
        if args.variants:
            kept = ["core", *_chosen(args.variants, variants)]
            variants = {name: variants[name] for name in kept}
        runs, drops = _bracketed(tmp, upstream, up_port, variants, args)
    lines = _report(runs, drops, args)
    print("", *lines, sep="\n")
    if args.record:
        _record(lines, started)
    return 0


def _bracketed(
    tmp: Path, upstream: Service, up_port: int, variants: Variants, args: argparse.Namespace
) -> tuple[dict[str, list[Run]], dict[str, list[float]]]:
    """Every variant once a round, each between two runs of `core`: core, ledger only,
    core, memory, core, ...; a variant's drop is against the mean of the core runs just
    before and after it. This machine's speed drifts by tens of percent over minutes,
    and a core run taken on one side only carried that drift into the drop."""
    runs: dict[str, list[Run]] = {}
    drops: dict[str, list[float]] = {}
    n = 0

    def one(name: str) -> Run:
        nonlocal n
        n += 1
        sections, virtual = variants[name]
        run = _variant(tmp, upstream, up_port, name, sections, virtual, args.seconds, n)
        m = run.measured
        runs.setdefault(name, []).append(run)
        print(
            f"  {name:15} {m.wrk.rps:8,.0f} req/s, gateway CPU"
            f" {m.cpu_ms_per_request:.3f} ms/req ({m.busy:.0%} of its core;"
            f" load core {m.load_core_busy:.0%} busy); µs/req:"
            f" {cpu_split.describe(run.split)}",
            flush=True,
        )
        return run

    before = one("core").measured.wrk.rps
    for _ in range(args.rounds):
        for name in variants:
            if name == "core":
                continue
            rate = one(name).measured.wrk.rps
            after = one("core").measured.wrk.rps
            drops.setdefault(name, []).append((1 - 2 * rate / (before + after)) * 100)
            before = after
    return runs, drops


def _report(
    runs: dict[str, list[Run]], drops: dict[str, list[float]], args: argparse.Namespace
) -> list[str]:
    lines = [f"median of {args.rounds} rounds, {args.seconds:g} s each, c{CONNECTIONS}:"]
    for name, done in runs.items():
        measured = [run.measured for run in done]
        rate = statistics.median(m.wrk.rps for m in measured)
        cpu = statistics.median(m.cpu_ms_per_request for m in measured)
        load = statistics.median(m.load_core_busy for m in measured)
        verdict = ""
        if name in drops:
            drop = statistics.median(drops[name])
            rounds = ", ".join(f"{d:.1f}" for d in drops[name])
            verdict = f"  {drop:5.1f}% fewer ({rounds})  {'PASS' if drop < 20 else 'FAIL'}"
        lines.append(
            f"{name:15} {rate:8,.0f} req/s  {cpu:.3f} ms CPU/req  load core {load:4.0%}{verdict}"
        )
    lines += ["", "CPU µs per request by process (median of the variant's runs):"]
    for name, done in runs.items():
        roles = {role for run in done for role in run.split}
        median = {r: statistics.median(run.split.get(r, 0.0) for run in done) for r in roles}
        lines.append(f"{name:15} {cpu_split.describe(median)}")
    return lines


def _record(lines: list[str], started: float) -> None:
    """``lines`` as bench/RESULTS.md's governance section, with the command that made them."""
    command = " ".join([".venv/bin/python bench/governance.py", *sys.argv[1:]])
    took = time.time() - started
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))
    text = "\n".join(
        [
            "## Governance overhead (`bench/governance.py`)",
            "",
            f"Written by `{command}` (started {when}, took {took:.0f} s) at"
            f" {_revision()} on {benchlib.cpu_model()}. Target: less than 20% fewer"
            " requests/s than `core` at c64, for memory and redis+postgres. The method,"
            ' and earlier runs: docs/governance.md, "Cost per request".',
            "",
            "```",
            *lines,
            "```",
        ]
    )
    benchlib.write_section(BENCH / "RESULTS.md", "governance", text)


def _revision() -> str:
    out = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    )
    return out.stdout.strip() or "an unknown revision"


def _setting(
    tmp: Path, stack: contextlib.ExitStack, args: argparse.Namespace
) -> tuple[Service, int, Variants]:
    """The upstream (started) and the variants' configuration."""
    up_port = benchlib.free_port()
    if args.upstream == "simulator":
        argv = [sys.executable, "-m", "lockgate.providers.simulator", "--latency", "0ms"]
    else:
        argv = [sys.executable, str(ROOT / "bench" / "lean_upstream.py")]
    upstream = Service("upstream", [*argv, "--port", str(up_port)], LOAD_CORE, tmp, cwd=ROOT)
    stack.enter_context(benchlib.running(upstream))
    upstream.wait_ready(f"http://127.0.0.1:{up_port}/v1/models")
    variants: Variants = {
        "core": (("database: null\n", ""), False),
        "ledger only": ((_sqlite(tmp, "ledger"), ""), False),
        "memory": ((_sqlite(tmp, "memory"), ""), True),
    }
    if args.redis and args.postgres:
        ports = [_local_port(args.redis, 6379), _local_port(args.postgres, 5432)]
        notes = stack.enter_context(benchlib.servers_pinned([p for p in ports if p], LOAD_CORE))
        for note in notes:
            print(f"  Redis and PostgreSQL on core {LOAD_CORE}: {note}", flush=True)
        database = stack.enter_context(_postgres(args.postgres))
        prefix = f"lgbench:{uuid.uuid4().hex[:8]}:"
        stack.callback(_forget, args.redis, prefix)
        redis = f"redis: {{url: '{args.redis}', prefix: '{prefix}'}}\n"
        ledger = f"database: {{url: '{database}', writer_cpus: [{LOAD_CORE}]}}\n"
        variants["redis+postgres"] = ((ledger, redis), True)
    return upstream, up_port, variants


def _compare(args: argparse.Namespace) -> int:
    """This tree against ``args.against``: this machine's speed drifts by more than a
    small change between runs minutes apart, so the two run in turn, and the difference is
    taken within each pair (the order alternates with the rounds)."""
    runs: dict[tuple[str, str], list[Run]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="lockgate-gov-") as tmp_name,
        contextlib.ExitStack() as stack,
    ):
        tmp = Path(tmp_name)
        other = stack.enter_context(_checkout(args.against, tmp / "against"))
        upstream, up_port, variants = _setting(tmp, stack, args)
        chosen = _chosen(args.variants or "memory", variants)
        n = 0
        for round_ in range(args.rounds):
            for name in chosen:
                sections, virtual = variants[name]
                sides = [("this", None), (args.against, other)]
                for side, source in sides if round_ % 2 == 0 else sides[::-1]:
                    n += 1
                    run = _variant(
                        tmp, upstream, up_port, name, sections, virtual, args.seconds, n, source
                    )
                    runs.setdefault((name, side), []).append(run)
                    print(
                        f"  {name:15} {side:12} {run.measured.wrk.rps:8,.0f} req/s,"
                        f" gateway process {run.main_us:6.1f} µs/req",
                        flush=True,
                    )
    print(f"\nmedian of {args.rounds} pairs, {args.seconds:g} s each, c{CONNECTIONS}:")
    for name in chosen:
        this, base = runs[(name, "this")], runs[(name, args.against)]
        pairs = list(zip(this, base, strict=True))
        gains = [(a.measured.wrk.rps / b.measured.wrk.rps - 1) * 100 for a, b in pairs]
        saved = [b.main_us - a.main_us for a, b in pairs]
        print(
            f"{name:15} req/s {statistics.median(gains):+5.1f}%"
            f" ({', '.join(f'{g:+.1f}' for g in gains)});"
            f" gateway process {statistics.median(a.main_us for a in this):.1f} against"
            f" {statistics.median(b.main_us for b in base):.1f} µs/req, saved"
            f" {statistics.median(saved):+.1f} ({', '.join(f'{d:+.1f}' for d in saved)})"
        )
    return 0


def _chosen(names: str, variants: Variants) -> list[str]:
    chosen = [name.strip() for name in names.split(",") if name.strip() != "core"]
    unknown = set(chosen) - set(variants)
    if unknown:
        raise BenchError(f"unknown variants {sorted(unknown)}; known: {sorted(variants)}")
    return chosen


@contextlib.contextmanager
def _checkout(rev: str, path: Path) -> Any:
    """``rev``'s ``src`` in a temporary git worktree (removed at the end)."""
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--quiet", str(path), rev],
        cwd=ROOT, check=True,
    )  # fmt: skip
    try:
        yield path / "src"
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)


def _local_port(url: str, default: int) -> int | None:
    """``url``'s port when its server is on this machine (then it is pinned), else None."""
    parts = urlsplit(url)
    return parts.port or default if parts.hostname in ("127.0.0.1", "localhost", "::1") else None


def _sqlite(tmp: Path, name: str) -> str:
    # The ledger's writer process on the load core, like PostgreSQL and Redis.
    return (
        f"database: {{url: 'sqlite:///{tmp}/{name}.db', spool_path: null, "
        f"writer_cpus: [{LOAD_CORE}]}}\n"
    )


@contextlib.contextmanager
def _postgres(server_url: str) -> Any:
    """A fresh database on ``server_url``'s server, dropped at the end."""
    import asyncio

    import asyncpg

    name = f"lockgate_bench_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server_url.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _forget(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


if __name__ == "__main__":
    benchlib.run_main(main)
