"""Instructions the gateway process executes per request, under callgrind: the governance
benchmark's variants (bench/governance.py) counted instead of timed.

    .venv/bin/python bench/instructions.py [--variants core,memory] [--seconds 15]
        [--against REV] [--redis URL --postgres URL]

Each variant's gateway runs under ``valgrind --tool=callgrind`` with collection off while
it starts and warms up (5 s of wrk at c64), on for ``--seconds`` of wrk at c64, then off;
the count divided by the requests answered is printed. On a shared machine whose speed
drifts by tens of percent between runs, the count repeats within about 1% and shows a
change of a few percent that timed runs cannot. What it leaves out: cache misses, the
kernel's work on the sockets, and the ledger's writer process (not traced). Timer-driven
work (the ledger's pacing, Redis credit refills) is counted more per request than at full
speed, since the gateway runs some 40 times slower under valgrind. With ``--against REV``
each variant is counted on this tree and on git revision REV.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib
import governance
from benchlib import ROOT, BenchError, Service

SECTION = re.compile(r"^totals:\s+(\d+)", re.MULTILINE)


def _count(
    tmp: Path, up_port: int, name: str, sections: tuple[str, str], virtual: bool,
    seconds: int, source: Path | None,
) -> tuple[int, int]:  # fmt: skip
    """(instructions, requests) of one gateway run under callgrind."""
    port = benchlib.free_port()
    tag = f"{name}-{'this' if source is None else 'other'}".replace(" ", "_")
    config = governance._config(tmp / f"{tag}.yaml", port, up_port, *sections)
    out = tmp / f"{tag}.callgrind"
    argv = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
        sys.executable, "-m", "lockgate", "serve", "--config", str(config),
    ]  # fmt: skip
    env = {"PYTHONPATH": str(source)} if source is not None else None
    gateway = Service(tag, argv, governance.GATEWAY_CORE, tmp, env=env, cwd=ROOT)
    with benchlib.running(gateway):
        gateway.wait_ready(f"http://127.0.0.1:{port}/health/ready", timeout=300)
        key = governance._virtual_key(port, f"i{port}") if virtual else governance.MASTER
        script = benchlib.write_wrk_script(tmp / f"{tag}.lua", governance.BODY, key)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        benchlib.warm_up(url, script, connections=governance.CONNECTIONS, seconds=5)
        control = ["callgrind_control"]
        subprocess.run([*control, "-i", "on", str(gateway.pid)], check=True, capture_output=True)
        wrk = benchlib.run_wrk(
            url, connections=governance.CONNECTIONS, duration_s=seconds, script=script,
            cores=governance.LOAD_CORE,
        )  # fmt: skip
        subprocess.run([*control, "-i", "off", str(gateway.pid)], check=True, capture_output=True)
        time.sleep(2)  # requests still in flight finish uncounted
        subprocess.run([*control, "-d", str(gateway.pid)], check=True, capture_output=True)
        time.sleep(1)
    if wrk.error_count:
        raise BenchError(f"{name}: wrk errors {wrk.errors}")
    total = sum(int(m) for f in tmp.glob(f"{out.name}*") for m in SECTION.findall(f.read_text()))
    return total, wrk.requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="core,ledger only,memory")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--against", metavar="REV")
    parser.add_argument("--redis", help="e.g. redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres", help="e.g. postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--upstream", choices=("lean", "simulator"), default="lean")
    args = parser.parse_args()
    counts: dict[tuple[str, str], float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="lockgate-instr-") as tmp_name,
        contextlib.ExitStack() as stack,
    ):
        tmp = Path(tmp_name)
        other = (
            stack.enter_context(governance._checkout(args.against, tmp / "against"))
            if args.against
            else None
        )
        _, up_port, variants = governance._setting(tmp, stack, args)
        sides = [("this", None)] + ([(args.against, other)] if args.against else [])
        for name in (n.strip() for n in args.variants.split(",")):
            if name not in variants:
                raise BenchError(f"unknown variant {name!r}; known: {sorted(variants)}")
            sections, virtual = variants[name]
            for side, source in sides:
                total, requests = _count(
                    tmp, up_port, name, sections, virtual, args.seconds, source
                )
                counts[(name, side)] = per = total / max(requests, 1)
                print(f"  {name:15} {side:12} {per:10,.0f} instructions a request"
                      f" ({requests} requests)", flush=True)  # fmt: skip
    base = counts.get(("core", "this"))
    print()
    for (name, side), per in counts.items():
        extra = f"  {per / base - 1:+.1%} against core" if base and name != "core" else ""
        print(f"{name:15} {side:12} {per:10,.0f}{extra}")
    return 0


if __name__ == "__main__":
    benchlib.run_main(main)
