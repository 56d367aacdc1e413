"""Where the gateway's CPU goes: wrk load through the gateway while py-spy samples it.

    .venv/bin/python bench/profile_gateway.py [--connections 64] [--duration 10]
        [--py-spy PATH] [--native] [--collapsed /tmp/lockgate.folded] [--top 25]

Same placement as `bench/overhead.py` (gateway alone on core 0; wrk, upstream and py-spy
on core 1). py-spy (`pip install py-spy`, anywhere: it is a standalone binary) samples the
gateway without pausing it (`--nonblocking`) and only while it is on CPU (idle samples are
dropped), so the shares printed are shares of the gateway's CPU time. Prints the top
functions by own ("self") time and by inclusive time; optionally keeps the stacks.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import benchlib
import overhead
from benchlib import BenchError


def find_py_spy(given: str | None) -> str:
    candidates = [given] if given else []
    candidates += [shutil.which("py-spy"), str(Path(sys.executable).parent / "py-spy")]
    for path in candidates:
        if path and Path(path).exists():
            return path
    raise BenchError("py-spy not found: pip install py-spy (any venv) and pass --py-spy PATH")


def package_of(frame: str) -> str:
    """`aiohttp`, `lockgate`, ... for a py-spy frame `func (package/module.py:line)`."""
    if "(" not in frame:
        return "other"
    path = frame.rpartition("(")[2].rstrip(")").rpartition(":")[0] or frame.rpartition("(")[2]
    if path in ("asyncio/runners.py", "asyncio/base_events.py"):
        return "event loop (uvloop C code and syscalls, attributed to run())"
    if "/" in path:
        return path.split("/")[0]
    if path.endswith(".py") or path.startswith("<frozen"):
        return "stdlib / single modules"
    name = path.rstrip(")")
    if "libpython" in name or name.endswith((".h", "ceval.c", "gcmodule.c")):
        return "native: CPython (interpreter, refcounts, GC)"
    if name.startswith("libc.so"):
        return "native: libc (syscalls)"
    return f"native: {name}"


def summarise(collapsed: str, top: int) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        # py-spy's first frame is the thread name ("process 123:..."): skip non-code frames.
        frames = [f for f in frames if "(" in f] or frames
        total += count
        own[frames[-1]] += count
        by_package[package_of(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples (was the gateway busy?)"
    out = [f"{total} on-CPU samples", "", "own time by package:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_package.most_common()]
    out += ["", "top by own time:"]
    out += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    out += ["", "top by inclusive time:"]
    out += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description="profile the gateway under wrk load")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--py-spy", dest="py_spy")
    parser.add_argument(
        "--native", action="store_true", help="include C frames (pauses the gateway per sample)"
    )
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--collapsed", type=Path, help="also write the collapsed stacks here")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--upstream", choices=("auto", "simulator", "bench"), default="auto")
    args = parser.parse_args()
    py_spy = find_py_spy(args.py_spy)
    kind = args.upstream
    if kind == "auto":
        kind = "simulator" if overhead.simulator_available() else "bench"
    benchlib.pin_self(overhead.LOAD_CORE)
    session_args = argparse.Namespace(quick=True)
    report = overhead.Report(
        command="", plan=overhead.QUICK, quick=True, upstream_kind=kind, upstream_workers=1
    )
    with (
        tempfile.TemporaryDirectory(prefix="lockgate-profile-") as tmp,
        contextlib.ExitStack() as stack,
        benchlib.sigterm_as_interrupt(),
    ):
        session = overhead.Session(session_args, Path(tmp), stack)
        session.start_upstreams(kind, 1)
        gateway = session.start_gateway(report)
        session.warm(overhead.FAST, args.connections)
        raw = Path(tmp) / "profile.txt"
        record = [
            "taskset",
            "-c",
            overhead.LOAD_CORE,
            py_spy,
            "record",
            "--pid",
            str(gateway.pid),
            "--rate",
            str(args.rate),
            "--duration",
            str(max(1, round(args.duration))),
            "--format",
            "raw",
            "--function",
            "--output",
            str(raw),
        ]
        # Native (C) frames need py-spy to pause the gateway at each sample.
        record.append("--native" if args.native else "--nonblocking")
        spy = subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stack.callback(lambda: spy.poll() is None and spy.kill())
        time.sleep(0.5)  # py-spy attaches
        result: list[benchlib.Measured] = []
        load = threading.Thread(
            target=lambda: result.append(
                session.measure(
                    overhead.FAST, args.connections, direct=False, seconds=args.duration
                )
            )
        )
        load.start()
        load.join(args.duration + 60)
        try:
            _, err = spy.communicate(timeout=args.duration + 60)
        except subprocess.TimeoutExpired as exc:
            raise BenchError("py-spy did not finish") from exc
        if not result:
            raise BenchError("the wrk run failed")
        m = result[0]
        print(
            f"c{args.connections}: {m.wrk.rps:,.0f} req/s, p50 {m.wrk.p50_ms:.2f} ms,"
            f" p99 {m.wrk.p99_ms:.2f} ms, gateway CPU {m.cpu_ms_per_request:.3f} ms/req"
            " (while sampled: py-spy costs the gateway a little)"
        )
        if not raw.exists():
            raise BenchError(f"py-spy wrote nothing: {err.decode(errors='replace')[-2000:]}")
        collapsed = raw.read_text()
        print(summarise(collapsed, args.top))
        if args.collapsed:
            args.collapsed.write_text(collapsed)
            print(f"\ncollapsed stacks written to {args.collapsed} (speedscope, flamegraph.pl)")
    return 0


if __name__ == "__main__":
    benchlib.run_main(main)
