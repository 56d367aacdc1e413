"""Cost of the rate-limit and budget engines per request, in process and through Redis.

    .venv/bin/python bench/limits.py [--redis redis://127.0.0.1:6379/0] [--n 20000]
                                     [--no-write]

A request's typical check: six rate-limit cells (key RPM and TPM, user RPM, team TPM and
TPD, key+model RPM) checked and charged at once, then its tokens settled; and a budget
reservation on two scopes (key, team) settled after; and both together on Redis credit
and a lease, one by one and in one step (features/shared_admit.py). Each is timed call by
call on one event loop (uvloop when installed), sequentially, so the Redis figures are one
round trip plus the script; a last run puts 64 checks in flight at once for the Redis
throughput.
Limits are high enough that everything is admitted. Keys live under a unique prefix and
are deleted afterwards. The "cold caches" rows evict the CPU caches before each call (a
16 MB write): in a busy gateway a request's admit finds them so, and costs several times
its warm figure. Writes the table into docs/limits.md (section `bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import benchlib
from lockgate.config.schema import RedisConfig
from lockgate.core.tasks import TaskTracker
from lockgate.core.types import Principal, RequestContext, Usage
from lockgate.features.budgets import Budget, LocalBudgets
from lockgate.features.budgets_redis import RedisBudgets
from lockgate.features.ratelimit import LocalRateLimiter, RateLimit
from lockgate.features.ratelimit_redis import RedisRateLimiter
from lockgate.features.shared_admit import SharedAdmission
from lockgate.storage.redis import SharedRedis

DOCS = benchlib.ROOT / "docs" / "limits.md"
BIG = 10**12
LIMITS = [
    RateLimit("key", "key-1", rpm=BIG, tpm=BIG),
    RateLimit("user", "user-1", rpm=BIG),
    RateLimit("team", "team-1", tpm=BIG, tpd=BIG),
    RateLimit("key", "key-1", rpm=BIG, model="gpt-4o-mini"),
]
BUDGETS = [
    Budget("key", "key-1", limit=BIG * 1000, period="monthly"),
    Budget("team", "team-1", limit=BIG * 1000, period="daily"),
]

PRINCIPAL = Principal(
    "key-1", user_id="user-1", team_id="team-1", limits=tuple(LIMITS), budgets=tuple(BUDGETS)
)


# Written before each call of a "cold" row: more than this machine's L2 cache (2 MB a
# core), so a call finds its code and data as a request does in a busy gateway, where
# about 100 µs of other work ran since the last admit.
EVICT = bytearray(16 * 2**20)
_LINE = b"\x01" * (len(EVICT) // 64)


def evict() -> None:
    EVICT[::64] = _LINE


async def timed(call: Callable[[], Awaitable[object]], n: int, cold: bool = False) -> list[float]:
    """Microseconds of each of ``n`` sequential calls, after a warm-up; ``cold``: with the
    CPU caches evicted before each call."""
    for _ in range(min(n // 10, 500)):
        await call()
    samples = []
    for _ in range(n):
        if cold:
            evict()
        started = time.perf_counter_ns()
        await call()
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def row(name: str, samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100)
    return f"| {name} | {statistics.median(samples):.1f} | {cuts[98]:.1f} | {len(samples)} |"


async def rate_check(limiter: LocalRateLimiter | RedisRateLimiter) -> None:
    grant = await limiter.check(LIMITS, model="gpt-4o-mini", tokens=1200)
    await limiter.settle(grant.ticket, 400)


async def check_only(limiter: LocalRateLimiter | RedisRateLimiter) -> None:
    await limiter.check(LIMITS, model="gpt-4o-mini", tokens=1200)


async def budget_cycle(budgets: LocalBudgets | RedisBudgets) -> None:
    reservation = await budgets.reserve(BUDGETS, 5_000_000)
    await budgets.settle(reservation, 1_000_000)


async def one_by_one(limiter: RedisRateLimiter, budgets: RedisBudgets) -> None:
    """The limits, then the budgets, each on its own (credit, then a lease)."""
    await rate_check(limiter)
    await budget_cycle(budgets)


async def one_step(admission: SharedAdmission) -> None:
    """Both at once on credit and a lease, as the Governor does (features/shared_admit.py);
    the engines one by one until this replica holds both."""
    ctx = RequestContext("bench")
    finish = admission.admit(ctx, PRINCIPAL, "gpt-4o-mini", 1200, 5_000_000)
    if finish is None:
        await one_by_one(admission.limiter, admission.budgets)
        return
    ctx.usage, ctx.cost = Usage(300, 100), 1_000_000
    finish()


async def run(args: argparse.Namespace) -> str:
    rows = []
    local = LocalRateLimiter()
    local_budgets = LocalBudgets()
    cold = max(500, args.n // 10)
    in_process: list[tuple[str, Callable[[], Awaitable[object]], int, bool]] = [
        ("rate limits: check, in process", lambda: check_only(local), args.n, False),
        ("rate limits: check + settle, in process", lambda: rate_check(local), args.n, False),
        ("budgets: reserve + settle, in process", lambda: budget_cycle(local_budgets), args.n,
         False),
        ("rate limits: check + settle, in process, cold caches", lambda: rate_check(local),
         cold, True),
        ("budgets: reserve + settle, in process, cold caches",
         lambda: budget_cycle(local_budgets), cold, True),
    ]  # fmt: skip
    for name, call, n, evicted in in_process:
        rows.append(row(name, await timed(call, n, cold=evicted)))
    prefix = f"lgbench:{os.urandom(6).hex()}:"
    shared = SharedRedis(RedisConfig.model_validate({"url": args.redis, "prefix": prefix}))
    throughput = ""
    try:
        await shared.client.ping()
        tasks = TaskTracker()
        redis = RedisRateLimiter(shared, tasks=tasks, credit=False)
        budgets = RedisBudgets(shared, tasks=tasks, leases=False)
        credited = RedisRateLimiter(shared, tasks=tasks)
        leased = RedisBudgets(shared, tasks=tasks)
        together = SharedAdmission(credited, leased, tasks)
        n = max(1000, args.n // 4)
        shared_rows: list[tuple[str, Callable[[], Awaitable[object]], int]] = [
            ("rate limits: check, Redis", lambda: check_only(redis), n),
            ("rate limits: check + settle, Redis", lambda: rate_check(redis), n),
            ("budgets: reserve + settle, Redis", lambda: budget_cycle(budgets), n),
            ("rate limits: check + settle, Redis with credit", lambda: rate_check(credited),
             args.n),
            ("budgets: reserve + settle, Redis on a lease", lambda: budget_cycle(leased),
             args.n),
            ("both, Redis on credit and a lease, one by one",
             lambda: one_by_one(credited, leased), args.n),
            ("both, Redis on credit and a lease, in one step",
             lambda: one_step(together), args.n),
        ]  # fmt: skip
        for name, call, count in shared_rows:
            rows.append(row(name, await timed(call, count)))
        await credited.close()
        await leased.close()
        ping = await timed(shared.client.ping, n)
        rows.append(row("(Redis PING round trip, for reference)", ping))
        started = time.perf_counter()
        total = 64 * (n // 16)

        async def worker() -> None:
            for _ in range(n // 16):
                await check_only(redis)

        await asyncio.gather(*(worker() for _ in range(64)))
        rate = total / (time.perf_counter() - started)
        throughput = (
            f"\n64 checks in flight through one client: {rate:,.0f} checks/s. A settle in"
            " Redis lingers 5 ms to share its batch with others (SETTLE_LINGER), which a"
            " sequential check + settle waits for; with credit and leases (docs/limits.md)"
            " both stay in process.\n"
        )
        assert not redis.failopen.down and not budgets.failopen.down, "Redis failed during the run"
        await tasks.drain(5.0)
    finally:
        keys = [k async for k in shared.client.scan_iter(match=f"{prefix}*")]
        if keys:
            await shared.client.delete(*keys)
        await shared.close()
    command = " ".join([".venv/bin/python bench/limits.py", *sys.argv[1:]])
    return (
        f"Measured {time.strftime('%Y-%m-%d')} with `{command}`"
        f" on {benchlib.cpu_model()}, Python {platform.python_version()}, Redis on loopback"
        f" (shared machine: load average {os.getloadavg()[0]:.2f}).\n\n"
        "| operation | median µs | p99 µs | calls |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
        + throughput
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--redis", default=os.environ.get("LOCKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--output", type=Path, default=DOCS)
    args = parser.parse_args()
    try:
        import uvloop

        text = uvloop.run(run(args))
    except ImportError:
        text = asyncio.run(run(args))
    print(text)
    if not args.no_write:
        benchlib.write_section(args.output, "bench", text)
        print(f"written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    benchlib.run_main(main)
