"""Users, teams, and the budgets and rate limits of keys, users and teams in the database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, delete, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from lockgate.features.budgets import Budget, Period
from lockgate.features.ratelimit import RateLimit
from lockgate.storage.keys import utc
from lockgate.storage.schema import budgets, rate_limits, spend_counters, teams, users
from lockgate.storage.spend_rows import period_starts

_TABLES = {"user": users, "team": teams}
_FIELDS = {"user": ("name", "email", "team_id", "metadata"), "team": ("name", "metadata")}


class Conflict(Exception):
    """A row with that id already exists, or a reference points nowhere."""


def _public(row: Any) -> dict[str, Any]:
    out = dict(row)
    if out.get("created_at") is not None:
        out["created_at"] = utc(out["created_at"]).isoformat()  # type: ignore[union-attr]
    return out


class ScopeStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # users and teams

    async def create(self, kind: str, values: dict[str, Any]) -> dict[str, Any]:
        table = _TABLES[kind]
        try:
            async with self.engine.begin() as conn:
                await conn.execute(table.insert().values(**values))
        except IntegrityError as exc:
            raise Conflict(f"{kind} {values['id']!r} exists or refers to a missing row") from exc
        found = await self.get(kind, values["id"])
        assert found is not None
        return found

    async def get(self, kind: str, scope_id: str) -> dict[str, Any] | None:
        table = _TABLES[kind]
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(table).where(table.c.id == scope_id))).mappings()
            found = row.first()
        return _public(found) if found is not None else None

    async def all(self, kind: str) -> list[dict[str, Any]]:
        table = _TABLES[kind]
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(table).order_by(table.c.id))
            return [_public(r) for r in rows.mappings()]

    async def update(
        self, kind: str, scope_id: str, values: dict[str, Any]
    ) -> dict[str, Any] | None:
        table = _TABLES[kind]
        if values:
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(update(table).where(table.c.id == scope_id).values(**values))
            except IntegrityError as exc:
                raise Conflict(f"{kind} {scope_id!r} refers to a missing row") from exc
        return await self.get(kind, scope_id)

    async def delete(self, kind: str, scope_id: str) -> bool:
        table = _TABLES[kind]
        async with self.engine.begin() as conn:
            await _drop_settings(conn, kind, scope_id)
            result = await conn.execute(delete(table).where(table.c.id == scope_id))
        return bool(result.rowcount)

    # budgets and limits of one scope

    async def settings(self, kind: str, scope_id: str) -> dict[str, list[dict[str, Any]]]:
        async with self.engine.connect() as conn:
            out = {}
            for name, table in (("budgets", budgets), ("limits", rate_limits)):
                stmt = (
                    select(table)
                    .where(table.c.scope_kind == kind, table.c.scope_id == scope_id)
                    .order_by(table.c.id)
                )
                out[name] = [_public(r) for r in (await conn.execute(stmt)).mappings()]
        return out

    async def put_budget(
        self, kind: str, scope_id: str, limit_nanos: int, period: str, alerts: list[float]
    ) -> None:
        """Set the scope's budget for ``period`` (one per scope and period)."""
        await self._replace(
            budgets,
            kind,
            scope_id,
            budgets.c.period == period,
            {"limit_nanos": limit_nanos, "period": period, "alert_thresholds": alerts},
        )

    async def put_limit(self, kind: str, scope_id: str, model: str, values: dict[str, Any]) -> None:
        """Set the scope's rate limits for ``model`` ("*": every model together)."""
        await self._replace(
            rate_limits, kind, scope_id, rate_limits.c.model == model, {"model": model, **values}
        )

    async def delete_budget(self, kind: str, scope_id: str, period: str) -> bool:
        return await self._delete(budgets, kind, scope_id, budgets.c.period == period)

    async def delete_limit(self, kind: str, scope_id: str, model: str) -> bool:
        return await self._delete(rate_limits, kind, scope_id, rate_limits.c.model == model)

    async def _replace(
        self, table: Table, kind: str, scope_id: str, which: Any, values: dict[str, Any]
    ) -> None:
        async with self.engine.begin() as conn:
            where = (table.c.scope_kind == kind, table.c.scope_id == scope_id, which)
            await conn.execute(delete(table).where(*where))
            await conn.execute(table.insert().values(scope_kind=kind, scope_id=scope_id, **values))

    async def _delete(self, table: Table, kind: str, scope_id: str, which: Any) -> bool:
        async with self.engine.begin() as conn:
            where = (table.c.scope_kind == kind, table.c.scope_id == scope_id, which)
            result = await conn.execute(delete(table).where(*where))
        return bool(result.rowcount)

    # what the hot path loads with a key

    async def governance(
        self, scopes: Sequence[tuple[str, str]]
    ) -> tuple[list[RateLimit], list[Budget]]:
        """The rate limits and budgets of ``scopes`` (kind, id), budgets seeded with the
        ledger's spend in their current period."""
        if not scopes:
            return [], []
        now = datetime.now(UTC)
        starts = period_starts(now.date())
        async with self.engine.connect() as conn:
            found_limits = (
                (
                    await conn.execute(
                        select(rate_limits).where(
                            tuple_(rate_limits.c.scope_kind, rate_limits.c.scope_id).in_(scopes)
                        )
                    )
                )
                .mappings()
                .all()
            )
            found_budgets = (
                (
                    await conn.execute(
                        select(budgets).where(
                            tuple_(budgets.c.scope_kind, budgets.c.scope_id).in_(scopes)
                        )
                    )
                )
                .mappings()
                .all()
            )
            c = spend_counters.c
            spent_rows = (
                await conn.execute(
                    select(c.scope_kind, c.scope_id, c.period, c.spent_nanos).where(
                        tuple_(c.scope_kind, c.scope_id).in_(scopes),
                        tuple_(c.period, c.period_start).in_(list(starts.items())),
                    )
                )
            ).all()
        spent = {(r[0], r[1], r[2]): int(r[3]) for r in spent_rows}
        limits = [
            RateLimit(
                r["scope_kind"], r["scope_id"], rpm=_int(r["rpm"]), tpm=_int(r["tpm"]),
                rpd=_int(r["rpd"]), tpd=_int(r["tpd"]),
                model=None if r["model"] == "*" else r["model"],
            )
            for r in found_limits
        ]  # fmt: skip
        out = []
        for r in found_budgets:
            period: Period | None = None if r["period"] == "none" else r["period"]
            start = starts[r["period"]]
            out.append(
                Budget(
                    r["scope_kind"],
                    r["scope_id"],
                    limit=int(r["limit_nanos"]),
                    period=period,
                    alerts=tuple(float(a) for a in r["alert_thresholds"] or ()) or (0.8,),
                    spent=spent.get((r["scope_kind"], r["scope_id"], r["period"]), 0),
                    spent_since=datetime(start.year, start.month, start.day, tzinfo=UTC),
                )
            )
        return limits, out


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


async def _drop_settings(conn: Any, kind: str, scope_id: str) -> None:
    for table in (budgets, rate_limits):
        await conn.execute(
            delete(table).where(table.c.scope_kind == kind, table.c.scope_id == scope_id)
        )
