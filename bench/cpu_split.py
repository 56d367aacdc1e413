"""Where a benchmark run's CPU went, process by process, in µs per request.

Two `benchlib.cpu_snapshot()` readings around a run, grouped into roles: the gateway's
own process, its children (the ledger's writer), the upstream, PostgreSQL's and Redis's
servers, and this script (whose reaped children, wrk among them, count in its own
children's time). Whatever else ran on the machine is `other`. A FAIL of a target at
saturation then shows which core ran out, and what spent it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import benchlib

Snapshot = dict[int, tuple[str, int]]


def roles(gateway_pid: int, upstream_pid: int) -> dict[int, str]:
    """Role of every process known now: the gateway's tree, the upstream's, this script."""
    named = {pid: "wrk+bench" for pid in benchlib.process_tree(os.getpid())}
    named.update({pid: "writer" for pid in benchlib.process_tree(gateway_pid)})
    named[gateway_pid] = "gateway"
    named.update({pid: "upstream" for pid in benchlib.process_tree(upstream_pid)})
    return named


def split(
    before: Snapshot, after: Snapshot, named: Mapping[int, str], requests: int
) -> dict[str, float]:
    """CPU µs per request by role between two snapshots; unnamed processes by their name
    when they are PostgreSQL or Redis, else `other`."""
    used: dict[str, int] = {}
    for pid, (name, ticks) in after.items():
        old = before.get(pid)
        delta = ticks - (old[1] if old else 0)
        if delta <= 0:
            continue
        role = named.get(pid) or _server(name)
        used[role] = used.get(role, 0) + delta
    scale = 1e6 / benchlib.CLK_TCK / max(requests, 1)
    return {role: ticks * scale for role, ticks in sorted(used.items())}


def describe(us: Mapping[str, float]) -> str:
    order = ["gateway", "writer", "upstream", "wrk+bench", "postgres", "redis", "other"]
    return ", ".join(f"{role} {us[role]:.0f}" for role in order if role in us)


def _server(name: str) -> str:
    if name.startswith("postgres"):
        return "postgres"
    if name.startswith("redis"):
        return "redis"
    return "other"
