"""The request log page: newest first, filtered by model, status class and start time, paged
by a keyset cursor (the last row's start and id), so paging stays fast on a large log."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from urllib.parse import urlencode

from aiohttp import web

from tokenyard.errors import InvalidRequest
from tokenyard.server.ui.render import UI, page, render
from tokenyard.server.ui.session import Session
from tokenyard.store.dashboard import LoggedRequest, RequestFilter

PAGE = 50


def _since(text: str) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest("since must be a date or an ISO 8601 time", param="since") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _cursor(row: LoggedRequest) -> str:
    started = row.started if row.started.tzinfo else row.started.replace(tzinfo=UTC)
    return base64.urlsafe_b64encode(f"{started.isoformat()}|{row.id}".encode()).decode()


def _uncursor(text: str) -> tuple[datetime, str] | None:
    if not text:
        return None
    try:
        started, _, request_id = base64.urlsafe_b64decode(text.encode()).decode().partition("|")
        return datetime.fromisoformat(started), request_id
    except ValueError:
        raise InvalidRequest("a bad page cursor", param="before") from None


@page()
async def requests_page(request: web.Request, session: Session) -> web.Response:
    query = request.query
    status = query.get("status", "")
    if status not in ("", "2xx", "4xx", "5xx"):
        raise InvalidRequest("status must be 2xx, 4xx or 5xx", param="status")
    account_id = session.account_id
    if session.is_admin:
        account_id = query.get("account") or None
    model = query.get("model", "").strip()
    where = RequestFilter(
        account_id=account_id,
        model=model or None,
        status_class=int(status[0]) if status else None,
        since=_since(query.get("since", "").strip()),
        before=_uncursor(query.get("before", "")),
        limit=PAGE,
    )
    rows = await request.app[UI].dashboard.request_page(where)
    older = None
    if rows is not None and len(rows) == PAGE:
        params = {k: v for k, v in query.items() if k != "before" and v}
        older = "?" + urlencode({**params, "before": _cursor(rows[-1])})
    return render(
        request,
        "requests.html",
        rows=rows,
        filters={"model": model, "status": status, "since": query.get("since", "")},
        account_filter=account_id if session.is_admin else None,
        older=older,
    )
