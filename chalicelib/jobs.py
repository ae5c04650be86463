"""Admin jobs over the call log: rebuild aggregates of closed days, check a day for drift, price calls again."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable

from . import aggstore, calllog, names
from .digest import digest
from .evaluate import evaluate
from .errors import InvalidRequest, NotFound
from .models import CallRecord
from .price_overrides import load_overrides
from .pricing import money, price_call
from .rollup import INDEXED_COUNTERS, SCOPE_KINDS, Fact, fold
from .settings import PROVIDERS, get_settings
from .usage import TokenUsage

MAX_RANGE_DAYS = 366


def _parse_day(value: Any, name: str) -> date:
    try:
        return datetime.strptime(str(value), "%Y-%m-%d").date()
    except ValueError:
        raise InvalidRequest(f"`{name}` must be a date like 2026-01-31") from None


def _today() -> date:
    return datetime.now(timezone.utc).date()


def oldest_logged_day() -> date:
    """The oldest UTC day whose calls are all still in the call log: TTL may delete a call from
    `call_ttl_days` after it was logged, so the day before this one may be partly gone already."""
    return _today() - timedelta(days=get_settings().call_ttl_days - 1)


def _within_retention(first: date, what: str) -> None:
    oldest = oldest_logged_day()
    if first < oldest:
        raise InvalidRequest(
            f"{first.isoformat()} is outside the call log's retention: calls are kept "
            f"{get_settings().call_ttl_days} days (TOLLGATE_CALL_TTL_DAYS), so days before {oldest.isoformat()} may "
            f"have expired and cannot be {what} from it; the oldest day that can be is {oldest.isoformat()}")


def _facts(day: str) -> list[Fact]:
    return [Fact.from_call(call) for call in CallRecord.by_day.query(day)]


def recalculate(body: Any, progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Rebuild the aggregates of closed UTC days `from`..`to` from the call log (today stays with the stream)."""
    body = body if isinstance(body, dict) else {}
    first, last = _parse_day(body.get("from"), "from"), _parse_day(body.get("to", body.get("from")), "to")
    if last < first:
        raise InvalidRequest("`to` is before `from`")
    if last >= _today():
        raise InvalidRequest("only closed days can be rebuilt: today's aggregates are still being written "
                             "by the stream")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise InvalidRequest(f"at most {MAX_RANGE_DAYS} days at a time")
    _within_retention(first, "rebuilt")  # a rebuild deletes the day's aggregates first: never for an expired day
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    calls = items = 0
    for done, day in enumerate(days, start=1):
        facts = _facts(day)
        items += aggstore.replace_day(day, fold(facts))
        calls += len(facts)
        if progress:
            progress(done, len(days), day)
    return {"job": "recalculate", "from": days[0], "to": days[-1], "days": len(days), "calls": calls,
            "items": items}


def reconcile(body: Any) -> dict[str, Any]:
    """Compare a day's stored aggregates with the call log; with `fix: true`, rebuild the day if it drifted."""
    body = body if isinstance(body, dict) else {}
    day = _parse_day(body.get("day", (_today() - timedelta(days=1)).isoformat()), "day").isoformat()
    expected = {(key.kind, key.scope_id): delta.counters for key, delta in fold(_facts(day)).items()}
    stored = {}
    for kind in SCOPE_KINDS:
        for item in aggstore.query_kind(kind, day, day, max_requests=1000):
            stored[(kind, item["day_id"].split("#", 1)[1])] = item
    drift = []
    for scope in sorted(set(expected) | set(stored)):
        want, have = expected.get(scope, {}), stored.get(scope, {})
        for counter in INDEXED_COUNTERS:
            if want.get(counter, 0) != have.get(counter, 0):
                drift.append({"scope": scope[0], "scope_id": scope[1], "counter": counter,
                              "call_log": str(want.get(counter, 0)), "aggregates": str(have.get(counter, 0))})
    result: dict[str, Any] = {"job": "reconcile", "day": day, "scopes": len(expected), "drift": drift,
                              "fixed": False}
    if drift and body.get("fix") is True:
        if day >= _today().isoformat():
            result["note"] = "today cannot be rebuilt while the stream writes it; run again tomorrow"
        else:
            recalculate({"from": day, "to": day})
            result["fixed"] = True
    return result


def reprice(body: Any, progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Price the logged calls of UTC days `start`..`end` again (optionally of one `provider`, one `model`).

    Today's price data (the overrides file, genai-prices, the provider's stated cost), each call at its
    own time, from the token kinds it stored. Only a call whose cost or price source changes is written,
    conditionally (calllog.set_price), and never to unpriced: a price known once is not forgotten. The
    stream folds each change into the aggregates, and so into reports, exports and budgets, exactly
    once. Running it again changes nothing; after a crash it converges. `cost_before_usd` and
    `cost_after_usd` sum the calls it re-priced (unpriced as 0).
    """
    body = body if isinstance(body, dict) else {}
    first = _parse_day(body.get("start"), "start")
    last = _parse_day(body.get("end", body.get("start")), "end")
    if last < first:
        raise InvalidRequest("`end` is before `start`")
    if last > _today():
        raise InvalidRequest("`end` is in the future")
    _within_retention(first, "re-priced")
    provider, model = body.get("provider") or None, body.get("model") or None
    if provider is not None and provider not in PROVIDERS:
        raise InvalidRequest(f"`provider` must be one of {', '.join(PROVIDERS)}")
    if model is not None and not isinstance(model, str):
        raise InvalidRequest("`model` must be a string")
    if model is not None:
        names.check(model, "`model`")
    overrides = load_overrides()  # read now, and refused whole if broken: never re-price without them
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    calls = repriced = conflicts = 0
    before = after = Decimal(0)
    for done, day in enumerate(days, start=1):
        for call in CallRecord.by_day.query(day, filter_condition=calllog.filters(provider, model)):
            calls += 1
            usage = stored_usage(call)
            if usage is None:
                continue
            ts = datetime.strptime(call.ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
            price = price_call(call.provider, call.model, usage, ts, overrides, call.provider_cost_usd)
            was = call.cost_usd
            if (price.cost_usd, price.source) == (was, call.price_source):
                continue
            if price.cost_usd is None:  # today's data knows no price: the one the call has is the best there is
                continue
            if not calllog.set_price(call, price.cost_usd, price.source, price.version, datetime.now(timezone.utc)):
                conflicts += 1  # changed or gone since it was read: a rerun prices it from what it is now
                continue
            repriced += 1
            before += was or 0
            after += price.cost_usd
        if progress:
            progress(done, len(days), day)
    return {"job": "reprice", "start": days[0], "end": days[-1], "days": len(days), "calls": calls,
            "calls_repriced": repriced, "cost_before_usd": money(before), "cost_after_usd": money(after),
            "conflicts": conflicts, "overrides": overrides.version}


def stored_usage(call: CallRecord) -> TokenUsage | None:
    """The usage a logged call was (or could have been) priced from; None for a call that had none to
    price: no usage reported (most failures) or usage that was implausible (logged as zeros, unpriced)."""
    usage = TokenUsage(input_tokens=call.input_tokens, cache_read_tokens=call.cache_read_tokens,
                       cache_write_tokens=call.cache_write_tokens, cache_write_1h_tokens=call.cache_write_1h_tokens,
                       output_tokens=call.output_tokens, reasoning_tokens=call.reasoning_tokens)
    if not (call.priced or call.usage_reported or any(vars(usage).values())) or not usage.plausible():
        return None
    return usage


JOBS: dict[str, Callable[[Any], dict[str, Any]]] = {"recalculate": recalculate, "reconcile": reconcile,
                                                    "reprice": reprice, "evaluate": evaluate, "digest": digest}


def run(job: str, body: Any) -> dict[str, Any]:
    if job not in JOBS:
        raise NotFound(f"unknown job {job!r}; available: {', '.join(sorted(JOBS))}")
    return JOBS[job](body)
