"""Coalescing across replicas: identical in-flight non-streaming requests on different
replicas share one upstream call.

Within a replica the in-process `Coalescer` already gathers identical requests behind one
local leader; that leader then claims the key in Redis (`SET co:<key> <token> NX GET PX`).
The replica that wins calls upstream; the others add themselves to `cowait:<key>` and wait.
The winner stores its result (or its error) under `cores:<key>` for a moment and publishes
it, once, to each waiting replica's own channel; a follower checks the stored result after
registering, so a result that was published before it listened is not missed. A follower
that hears nothing within `redis.coalesce_wait` (or its deadline), whose leader went away,
or whose link to Redis fails, calls upstream itself. Streams are coalesced per replica.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson
from prometheus_client.core import CounterMetricFamily, Metric
from redis.typing import EncodableT

from lockgate.core.errors import GatewayError
from lockgate.core.types import JSON, ChatResponse, RequestContext, Usage
from lockgate.features.coalesce import Answer
from lockgate.features.shared_state import SharedLink

# The result for the followers that register late, then one message per waiting replica.
_PUBLISH = """
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[2])
local waiters = redis.call('SMEMBERS', KEYS[2])
for _, replica in ipairs(waiters) do redis.call('PUBLISH', ARGV[3] .. replica, ARGV[4]) end
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
redis.call('DEL', KEYS[2])
return #waiters
"""
RESULT_TTL_MS = 5_000  # long enough for a follower between its claim and its read


class RemoteFailure(GatewayError):
    """The error another replica's shared call ended with, as its client would see it."""

    def __init__(self, fields: JSON) -> None:
        super().__init__(
            str(fields["message"]),
            param=fields.get("param"),
            code=fields.get("code"),
            retry_after=fields.get("retry_after"),
            deployment=fields.get("deployment"),
            status=int(fields["status"]),
        )
        self.kind = str(fields["kind"])  # type: ignore[misc]
        self.type = str(fields["type"])  # type: ignore[misc]


class RemoteCoalescer:
    def __init__(self, link: SharedLink, wait: float) -> None:
        self._link = link
        self._wait = wait
        self._claim_ms = max(int(wait * 1000), 1000)
        self._publish = link.client.register_script(_PUBLISH)
        self._waiting: dict[str, list[tuple[str, asyncio.Future[JSON]]]] = {}
        self.outcomes: dict[str, int] = {}  # led, followed, timeout, gone, alone
        link.on("co", self._on_result)
        link.join(self)

    async def share(
        self, key: str, produce: Callable[[], Awaitable[Answer]], deadline: float | None
    ) -> Answer:
        link = self._link
        if not link.up:
            return await self._alone(produce)
        token = f"{link.replica}:{uuid.uuid4().hex[:8]}"
        try:
            held = await link.call(
                "coalesce_claim",
                link.client.set(
                    link.redis.key("co", key), token, nx=True, get=True, px=self._claim_ms
                ),
            )
        except Exception:
            return await self._alone(produce)
        if held is None:
            return await self._lead(key, token, produce)
        payload = await self._follow(key, held.decode(), deadline)
        if payload is None or "down" in payload:
            self._count("timeout" if payload is None else "alone")
            return await produce()
        if "ok" in payload:
            self._count("followed")
            return _decode(payload["ok"])
        if "err" in payload:
            self._count("followed")
            raise RemoteFailure(payload["err"])
        self._count("gone")  # the leader's clients all went away before the answer
        return await produce()

    async def _alone(self, produce: Callable[[], Awaitable[Answer]]) -> Answer:
        self._count("alone")
        return await produce()

    async def _lead(self, key: str, token: str, produce: Callable[[], Awaitable[Answer]]) -> Answer:
        self._count("led")
        try:
            answer = await produce()
        except GatewayError as exc:
            self._finish(key, token, {"err": _error(exc)})
            raise
        except BaseException:
            self._finish(key, token, {"gone": True})
            raise
        self._finish(key, token, {"ok": _encode(answer)})
        return answer

    def _finish(self, key: str, token: str, payload: JSON) -> None:
        link = self._link
        message = orjson.dumps({"k": "co", "key": key, "t": token, **payload})
        keys = [
            link.redis.key("cores", key),
            link.redis.key("cowait", key),
            link.redis.key("co", key),
        ]
        args: list[EncodableT] = [token, RESULT_TTL_MS, link.direct_channel(""), message]
        link.send("coalesce_result", lambda _: self._publish(keys=keys, args=args))

    async def _follow(self, key: str, token: str, deadline: float | None) -> JSON | None:
        """The leader's published outcome, or None when it did not come in time. Every
        sync interval the follower also looks at the keys, in case the message was lost
        (the leader's replica lost Redis, or this replica's listener reconnected)."""
        link = self._link
        give_up = time.perf_counter() + self._wait
        if deadline is not None:
            give_up = min(give_up, deadline)
        future: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.setdefault(key, [])
        waiting.append((token, future))
        claim, result = link.redis.key("co", key), link.redis.key("cores", key)
        try:
            waiters = link.redis.key("cowait", key)
            pipe = link.client.pipeline(transaction=False)
            pipe.sadd(waiters, link.replica)
            pipe.pexpire(waiters, self._claim_ms)
            pipe.get(result)
            pipe.get(claim)
            replies = await link.call("coalesce_wait", pipe.execute())
            while True:
                stored, held = replies[-2], replies[-1]
                if stored is not None and (event := orjson.loads(stored)).get("t") == token:
                    return dict(event)
                if held is None or held.decode() != token:
                    return {"gone": True}  # the leader finished, its news lost
                left = give_up - time.perf_counter()
                if left <= 0:
                    return None
                try:
                    async with asyncio.timeout(min(left, link.interval)):
                        return await asyncio.shield(future)
                except TimeoutError:
                    pass
                replies = await link.call("coalesce_wait", link.client.mget(result, claim))
        except asyncio.CancelledError:
            raise
        except Exception:  # Redis failed, or the link went down
            return None
        finally:
            waiting.remove((token, future))
            if not waiting:
                self._waiting.pop(key, None)

    def _on_result(self, event: JSON) -> None:
        for token, future in self._waiting.get(str(event["key"]), ()):
            if token == event["t"] and not future.done():
                future.set_result(event)

    def on_down(self) -> None:
        """Stop waiting for other replicas: every follower calls upstream itself."""
        for waiting in self._waiting.values():
            for _, future in waiting:
                if not future.done():
                    future.set_result({"down": True})

    async def sync(self, link: SharedLink) -> None:
        return None

    def next_due(self) -> float | None:
        return None

    async def run_due(self, link: SharedLink, now: float) -> None:
        return None

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "lockgate_shared_coalesce",
            "Coalescible requests by what the replicas did: led (called upstream for all), "
            "followed (another replica's call), timeout or gone (waited, then called "
            "upstream), alone (Redis unavailable).",
            labels=["outcome"],
        )
        for outcome, count in self.outcomes.items():
            family.add_metric([outcome], count)
        yield family


def _encode(answer: Answer) -> JSON:
    response, ctx = answer
    usage = response.usage
    return {
        "body": response.body,
        "usage": [
            usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens,
            usage.cache_creation_tokens, usage.reasoning_tokens,
        ],
        "ctx": [ctx.model_group, ctx.deployment, ctx.provider, ctx.attempts, ctx.fallback],
    }  # fmt: skip


def _decode(fields: JSON) -> Answer:
    group, deployment, provider, attempts, fallback = fields["ctx"]
    leader = RequestContext(
        request_id="",
        model_group=group,
        deployment=deployment,
        provider=provider,
        attempts=attempts,
        fallback=fallback,
    )
    return ChatResponse(body=fields["body"], usage=Usage(*fields["usage"])), leader


def _error(exc: GatewayError) -> dict[str, Any]:
    return {
        "message": exc.message, "param": exc.param, "code": exc.code, "status": exc.status,
        "retry_after": exc.retry_after, "deployment": exc.deployment, "kind": exc.kind,
        "type": exc.type,
    }  # fmt: skip
