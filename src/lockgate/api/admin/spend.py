"""Admin route for spend reports: by key, user, team, model, deployment, provider or day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aiohttp import web

from lockgate.api.admin.common import Route, admin, respond
from lockgate.api.admin.models import SpendReport, SpendRowOut
from lockgate.core.errors import BadRequest
from lockgate.storage.reports import GROUPS, spend_by


def _moment(request: web.Request, name: str, default: datetime) -> datetime:
    raw = request.query.get(name)
    if not raw:
        return default
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name}: not an ISO 8601 date or time: {raw!r}", param=name) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def report(request: web.Request) -> web.Response:
    db, _ = await admin(request)
    by = request.query.get("group_by", "key")
    if by not in GROUPS:
        raise BadRequest(f"group_by must be one of {', '.join(GROUPS)}", param="group_by")
    end = _moment(request, "end", datetime.now(UTC))
    start = _moment(request, "start", end - timedelta(days=30))
    q = request.query
    rows = await spend_by(
        db.engine, by, start, end,
        key_id=q.get("key_id"), user_id=q.get("user_id"), team_id=q.get("team_id"),
        model=q.get("model"),
    )  # fmt: skip
    return respond(
        SpendReport(
            group_by=by,
            start=start,
            end=end,
            data=[
                SpendRowOut(
                    group=r.group,
                    cost_usd=f"{Decimal(r.cost_nanos).scaleb(-9):f}",
                    cost_nanos=r.cost_nanos,
                    requests=r.requests,
                    errors=r.errors,
                    prompt_tokens=r.prompt_tokens,
                    completion_tokens=r.completion_tokens,
                    cached_tokens=r.cached_tokens,
                    reasoning_tokens=r.reasoning_tokens,
                )
                for r in rows
            ],
        )
    )


ROUTES = [
    Route(
        "GET", "/admin/spend", report, "Spend report over [start, end), grouped", None,
        SpendReport, ("group_by", "start", "end", "key_id", "user_id", "team_id", "model"),
    ),
]  # fmt: skip
