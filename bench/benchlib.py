"""Shared benchmark plumbing: pinned processes, readiness, CPU/RSS from /proc, wrk runs.

Used by `bench/overhead.py` and `bench/stacks/run_stacks.py`. Linux only (reads /proc).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import orjson

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
WRK = "wrk"

#: The request every load generator sends: a realistic small chat completion.
CHAT_REQUEST: dict[str, object] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
        {
            "role": "user",
            "content": "Summarise: lockgate is an AI gateway, one OpenAI-compatible endpoint "
            "in front of every LLM provider, with routing, retries and token accounting.",
        },
    ],
    "max_tokens": 64,
    "temperature": 0.2,
}


class BenchError(RuntimeError):
    """A benchmark step failed (a process died, a server never became ready, wrk failed)."""


# ----------------------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    # comm (field 2) may contain spaces: split after its closing parenthesis.
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(pid: int) -> list[int]:
    """`pid` and all its live descendants."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, ()))
    return tree


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime (all threads) of the given processes, in seconds."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = _stat_fields(pid)
            ticks += int(fields[11]) + int(fields[12])  # stat fields 14 and 15
    return ticks / CLK_TCK


def cpu_snapshot() -> dict[int, tuple[str, int]]:
    """Every user process's name and CPU ticks, including those of children it has reaped."""
    snap: dict[int, tuple[str, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        if fields[1] in ("0", "2") and entry.name != "1":
            continue  # kernel threads: they also do this benchmark's network and memory work
        snap[int(entry.name)] = (name, sum(int(f) for f in fields[11:15]))
    return snap


def core_ticks(core: str) -> tuple[int, int]:
    """(busy, total) ticks of one CPU from /proc/stat (idle and iowait are not busy)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            ticks = [int(v) for v in line.split()[1:]]
            return sum(ticks) - ticks[3] - ticks[4], sum(ticks)
    return 0, 0


def foreign_cpu(
    before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]], ours: set[int]
) -> tuple[float, str]:
    """CPU seconds used between two snapshots by processes outside `ours`, and the top ones.

    Catches other people's load on the machine (anything they started and reaped shows up
    in its parent's children time); what ran and vanished without a parent here is missed.
    """
    used: dict[str, int] = {}
    for pid, (name, ticks) in after.items():
        if pid in ours:
            continue
        old = before.get(pid)
        delta = ticks - (old[1] if old else 0)  # same pid, maybe exec'd under a new name
        if delta > 0:
            used[name] = used.get(name, 0) + delta
    top = sorted(used.items(), key=lambda kv: -kv[1])[:3]
    return sum(used.values()) / CLK_TCK, ", ".join(f"{n} {t / CLK_TCK:.1f}s" for n, t in top)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def pin_self(cores: str) -> None:
    """Pin the calling process (and what it spawns without taskset) to `cores`."""
    os.sched_setaffinity(0, {int(c) for c in cores.split(",")})


def listening_pid(port: int) -> int | None:
    """The local process listening on TCP ``port`` (the first of a tree sharing the
    socket), or None when none here is (or its sockets are not ours to read)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    holders = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd.path) in inodes for fd in os.scandir(f"{entry.path}/fd")):
                holders.append(int(entry.name))
    return min(holders) if holders else None


@contextlib.contextmanager
def servers_pinned(ports: Sequence[int], cores: str) -> Iterator[list[str]]:
    """Pin the local servers listening on ``ports``, with their children (and so what they
    fork meanwhile, such as PostgreSQL's backends), to ``cores``; their affinity is given
    back at the end. Yields a note per port on what could not be pinned."""
    target = {int(c) for c in cores.split(",")}
    roots: dict[int, set[int]] = {}  # a server's pid -> its affinity before
    notes: list[str] = []
    for port in ports:
        pid = listening_pid(port)
        if pid is None:
            notes.append(f"port {port}: no local server found, not pinned")
            continue
        try:
            roots[pid] = os.sched_getaffinity(pid)
            for child in process_tree(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.sched_setaffinity(child, target)
        except PermissionError as exc:
            notes.append(f"port {port}: not pinned ({exc})")
    try:
        yield notes
    finally:
        for pid, before in roots.items():
            for child in process_tree(pid):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(child, before)


# ----------------------------------------------------------------------------- processes


@dataclass
class Service:
    """A server process pinned to `cores`, started in its own session, always stopped."""

    name: str
    argv: list[str]
    cores: str
    log_dir: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    spawned_at: float = 0.0
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError(f"{self.name} is not running")
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        env = {**os.environ, **(self.env or {})}
        self.spawned_at = time.perf_counter()
        self.proc = subprocess.Popen(
            ["taskset", "-c", self.cores, *self.argv],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.cwd,
            start_new_session=True,
        )

    def wait_ready(self, url: str, timeout: float = 20.0) -> float:
        """Poll `url` until it answers 200; return seconds from spawn to that answer."""
        host, port, path = split_url(url)
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            conn = http.client.HTTPConnection(host, port, timeout=1.0)
            try:
                conn.request("GET", path)
                if conn.getresponse().status == 200:
                    return time.perf_counter() - self.spawned_at
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.002)
        raise BenchError(f"{self.name} not ready at {url} after {timeout}s: {self.tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise BenchError(f"{self.name} died: {self.tail()}")

    def cpu_seconds(self) -> float:
        return cpu_seconds(process_tree(self.pid))

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the session this Service created
                proc.wait(5)
        if proc is not None:
            # Workers a server forked share its session: make sure none outlives it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None


@contextlib.contextmanager
def running(service: Service) -> Iterator[Service]:
    service.start()
    try:
        yield service
    finally:
        service.stop()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so `finally` blocks stop every child."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def split_url(url: str) -> tuple[str, int, str]:
    match = re.match(r"^http://([^:/]+):(\d+)(/.*)?$", url)
    if not match:
        raise ValueError(f"expected http://host:port/path, got {url}")
    return match.group(1), int(match.group(2)), match.group(3) or "/"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------------------------------- wrk

_LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = {auth}

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {{\\"requests\\":%d,\\"duration_us\\":%d,\\"connect\\":%d,\\"read\\":%d," ..
    "\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,\\"p50\\":%d,\\"p90\\":%d," ..
    "\\"p99\\":%d,\\"mean\\":%f,\\"max\\":%d}}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
"""


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_wrk_script(path: Path, body: dict[str, object], api_key: str) -> Path:
    """A wrk Lua script that POSTs `body` with a bearer key and prints a JSON summary."""
    path.write_text(
        _LUA.format(
            body=_lua_string(orjson.dumps(body).decode()),
            auth=_lua_string(f"Bearer {api_key}"),
        )
    )
    return path


@dataclass(frozen=True)
class WrkResult:
    connections: int
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int]

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def run_wrk(
    url: str, *, connections: int, duration_s: float, script: Path, cores: str = "1"
) -> WrkResult:
    """One bounded wrk run (`-t1`, `--latency`) pinned to `cores`."""
    seconds = max(1, round(duration_s))
    argv = [
        "taskset",
        "-c",
        cores,
        WRK,
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    try:
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish: {' '.join(argv)}") from exc
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    data = orjson.loads(line[len("WRKJSON ") :])
    return WrkResult(
        connections=connections,
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        p50_ms=data["p50"] / 1000,
        p90_ms=data["p90"] / 1000,
        p99_ms=data["p99"] / 1000,
        mean_ms=data["mean"] / 1000,
        max_ms=data["max"] / 1000,
        errors={k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout")},
    )


@dataclass(frozen=True)
class Measured:
    """A wrk run against a server plus the CPU the server (and its upstream) spent meanwhile."""

    wrk: WrkResult
    cpu_s: float
    upstream_cpu_s: float
    foreign_cpu_s: float = 0.0
    foreign_top: str = ""
    load_core_busy: float = float("nan")  # the load core's use over the run (0..1)

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_s / self.wrk.requests if self.wrk.requests else float("nan")

    @property
    def busy(self) -> float:
        """The measured server's CPU use as a share of one core over the run."""
        return self.cpu_s / self.wrk.duration_s if self.wrk.duration_s else 0.0

    @property
    def upstream_busy(self) -> float:
        """The upstream's CPU use as a share of one core over the run."""
        return self.upstream_cpu_s / self.wrk.duration_s if self.wrk.duration_s else 0.0


def measure(
    target: Service | None,
    upstream: Service,
    url: str,
    *,
    connections: int,
    duration_s: float,
    script: Path,
    cores: str = "1",
) -> Measured:
    """Run wrk against `url`, recording the CPU `target` (if any) and `upstream` spent."""
    services = [s for s in (target, upstream) if s is not None]
    machine_before = cpu_snapshot()
    load_before = core_ticks(cores) if cores.isdigit() else (0, 0)
    before = [s.cpu_seconds() for s in services]
    result = run_wrk(
        url, connections=connections, duration_s=duration_s, script=script, cores=cores
    )
    after = [s.cpu_seconds() for s in services]
    load_after = core_ticks(cores) if cores.isdigit() else (0, 0)
    machine_after = cpu_snapshot()
    for service in services:
        service.check_alive()
    spent = [b - a for a, b in zip(before, after, strict=True)]
    foreign, top = foreign_cpu(machine_before, machine_after, our_processes())
    busy, total = (b - a for a, b in zip(load_before, load_after, strict=True))
    load = busy / total if total else float("nan")
    return Measured(result, spent[0] if target else 0.0, spent[-1], foreign, top, load)


def our_processes() -> set[int]:
    """This process and everything it started (servers, load generators)."""
    return set(process_tree(os.getpid()))


def warm_up(url: str, script: Path, *, connections: int = 16, seconds: float = 1) -> None:
    run_wrk(url, connections=connections, duration_s=seconds, script=script)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    return f"{os.cpu_count()} CPUs"


def write_section(path: Path, name: str, text: str) -> None:
    """Replace the section `name` of a results file (between its markers), or append it,
    leaving the other benchmarks' sections as they were."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if start in old and end in old:
        head, rest = old.split(start, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        new = head + block + ("\n" + tail if tail else "")
    elif old.strip():
        new = old.rstrip() + "\n\n" + block
    else:
        new = block
    path.write_text(new, encoding="utf-8")


def run_main(main: Callable[[], int]) -> None:
    """A benchmark's entry point: errors as one line, Ctrl-C after every child stopped."""
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: every process this benchmark started was stopped", file=sys.stderr)
        sys.exit(130)
