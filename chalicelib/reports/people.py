"""Who spent it (CONTRACT §4): users by cost, a user's sessions, one session and its calls. Aggregates only,
but for a session's calls (the call log, bounded by the session's first and last call).

An account's users are its split by user (one small item per user and day: one Query for any range); all
accounts' users are the `by_kind` index over the user scopes. A session's totals are kept twice by the
rollup: under the session id (one item per account using it) and under its user (named account first).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from chalicelib import caller_names, clock
from chalicelib.clock import parse_precise, precise
from chalicelib.errors import InvalidRequest, NotFound
from chalicelib.ledger import Principal, scoped_account
from chalicelib.ledger import call_view
from chalicelib.ledger import CallRecord
from chalicelib.reports import aggregates as agg
from chalicelib.reports import ranges
from chalicelib.rollup import store
from chalicelib.rollup import (
    DAY_BREAKDOWN_ITEM,
    INDEXED_COUNTERS,
    SEP,
    SESSION_ITEM,
    Scope,
    scope_id_of_day_id,
    session_account,
    session_of_user,
    stored_name,
)
from chalicelib.query import Query

USERS_LIMIT_MAX = 1000
SESSION_CALLS_MAX = 1000
ACCOUNTS_OF_A_USER_MAX = 2  # an admin's `?user=` without an account: the user's accounts, each one Query


def _required(params: Query, name: str) -> str:
    """A parameter that must be given (query parameters are checked as names at the edge already)."""
    if not params.get(name):
        raise InvalidRequest(f"`{name}` is required")
    return params[name]


def users(principal: Principal, params: Query) -> dict[str, Any]:
    """`GET /api/usage/users`: users by cost, highest first, over a range; by account and team."""
    period = ranges.parse(params, clock.now(), default=("days", 7))
    limit = params.integer("limit", 50, 1, USERS_LIMIT_MAX)
    account, team = scoped_account(principal, params.get("account")), params.get("team") or None
    if account and team:
        raise InvalidRequest("users are split by account or by team: filter by one of them")
    first, last = period.first_day, period.last_day
    if account or team:
        scope = Scope("account", account) if account else Scope("team", team or "")
        items = store.query_days(scope, first, last, INDEXED_COUNTERS, parts=[f"{DAY_BREAKDOWN_ITEM}{SEP}user"])
        split = agg.breakdown(items, None, "user")
    else:
        entries = store.query_kind("user", first, last)
        split = agg.breakdown_of_scopes(entries, lambda entry: scope_id_of_day_id(entry["day_id"]))
        items = store.query_kind("global", first, last)
    whole = agg.total([(item, "") for item in items])  # the calls without a user are the `(none)` row
    rows = [_user_row(user, account, view) for user, view in agg.with_none(split, whole).items()]
    rows.sort(key=lambda row: (-Decimal(row["cost_usd"] or 0), -row["calls"], row["user"]))
    return {**period.named, "from": first, "to": last, "account": account, "team": team, "users": rows[:limit],
            "truncated": len(rows) > limit}


def _user_row(user: str, account: str | None, view: dict[str, Any]) -> dict[str, Any]:
    return {"user": user, "account": account, "calls": view["calls"], "errors": view["errors"],
            "refused": view["refused"], "tokens": view["tokens"], "cost_usd": agg.known_cost_only(dict(view))["cost_usd"],
            "unpriced_calls": view["unpriced_calls"]}


def sessions(principal: Principal, params: Query) -> dict[str, Any]:
    """`GET /api/sessions?user=…`: the user's sessions active in the range, newest first."""
    period = ranges.parse(params, clock.now(), default=("days", 7))
    user = _required(params, "user")
    limit = params.integer("limit", 100, 1, USERS_LIMIT_MAX)
    account = scoped_account(principal, params.get("account"))
    accounts = [account] if account else _accounts_of(user)
    found = []
    for owner in accounts:
        prefix = f"{SESSION_ITEM}{SEP}{session_of_user(stored_name(owner), '')}"
        for item in store.query_items(Scope("user", user), prefix, prefix + "\uffff"):
            if item.get("last_ts", "") >= precise(period.start) and item.get("first_ts", "") <= precise(period.end):
                found.append(_session_row(item, owner, user))
    found.sort(key=lambda row: row["last_ts"], reverse=True)
    return {**period.named, "from": period.first_day, "to": period.last_day, "user": user,
            "sessions": found[:limit], "truncated": len(found) > limit}


def _accounts_of(user: str) -> list[str]:
    """The accounts whose calls name `user`, newest first (the call log's user index, one page)."""
    seen: list[str] = []
    for call in CallRecord.by_user.query(user, scan_index_forward=False, limit=200, page_size=200,
                                         attributes_to_get=["account"]):
        if call.account not in seen:
            seen.append(call.account)
        if len(seen) == ACCOUNTS_OF_A_USER_MAX:
            break
    return seen


def _session_row(item: dict[str, Any], account: str, user: str | None) -> dict[str, Any]:
    totals = agg.Totals()
    totals.add(item, "")
    counts = totals.view(with_latency=False)
    return {"session": item.get("session", ""), "user": user or item.get("user") or None, "account": account,
            "calls": counts["calls"], "errors": counts["errors"], "tokens": counts["tokens"],
            "cost_usd": counts["cost_usd"], "first_ts": item.get("first_ts"), "last_ts": item.get("last_ts")}


def session(principal: Principal, session_id: str, params: Query) -> dict[str, Any]:
    """`GET /api/sessions/{session}`: its totals and its calls (the account's, between its first and last)."""
    caller_names.check(session_id, "the session id")
    account = scoped_account(principal, params.get("account"))
    held = store.query_items(Scope("session", session_id), f"{SESSION_ITEM}{SEP}", f"{SESSION_ITEM}{SEP}\uffff")
    if account:
        held = [item for item in held if item["day"] == f"{SESSION_ITEM}{SEP}{stored_name(account)}"]
    if not held:
        raise NotFound(f"no session {session_id!r}" + (f" in account {account!r}" if account else ""))
    if len(held) > 1:
        raise InvalidRequest("more than one account uses this session id: add `account=`")
    item = held[0]
    owner = account or session_account(item["day"])
    row = _session_row(item | {"session": session_id}, owner, item.get("user") or None)
    calls = list(_calls_of(owner, session_id, item["first_ts"], item["last_ts"]))
    totals = {"calls": row["calls"], "errors": row["errors"], "tokens": row["tokens"], "cost_usd": row["cost_usd"]}
    return {"session": session_id, "user": row["user"], "account": owner, "first_ts": row["first_ts"],
            "last_ts": row["last_ts"], "totals": totals, "calls": [call_view(c) for c in calls],
            "truncated": len(calls) == SESSION_CALLS_MAX}


def _calls_of(account: str, session_id: str, first_ts: str, last_ts: str):
    """The session's calls, oldest first: the account's calls between its first and last, by session."""
    parse_precise(first_ts), parse_precise(last_ts)  # what the rollup wrote: a malformed one fails here
    return CallRecord.query(account, CallRecord.sk.between(first_ts, f"{last_ts}#~"),
                            filter_condition=CallRecord.session == session_id, limit=SESSION_CALLS_MAX,
                            page_size=SESSION_CALLS_MAX)

