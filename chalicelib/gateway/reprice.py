"""Price logged calls again: after a price change, an override added, or a provider's late cost statement."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any, Callable

from chalicelib import caller_names, clock
from chalicelib.clock import parse_day, parse_precise, utc_today
from chalicelib.errors import InvalidRequest
from chalicelib.gateway.tokens import TokenUsage
from chalicelib.ledger import calllog
from chalicelib.ledger import CallRecord
from chalicelib.money import money
from chalicelib import provider_registry


def reprice(body: Any, progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Price the logged calls of UTC days `start`..`end` again (optionally of one `provider`, one `model`).

    Today's price data (the provider's stated cost, the overrides file, genai-prices), each call at its
    own time, from the token kinds, searches and service tier / speed it stored. Only a call whose cost,
    price source or estimate beside a stated cost changes is written, conditionally (calllog.set_price),
    and never to unpriced: a price known once is not forgotten. The stream folds each change into the
    aggregates, and so into reports, exports and budgets, exactly once. Running it again changes nothing;
    after a crash it converges. `cost_before_usd` and `cost_after_usd` sum the calls it re-priced
    (unpriced as 0).
    """
    body = body if isinstance(body, dict) else {}
    first = parse_day(body.get("start"), "start")
    last = parse_day(body.get("end", body.get("start")), "end")
    if last < first:
        raise InvalidRequest("`end` is before `start`")
    if last > utc_today():
        raise InvalidRequest("`end` is in the future")
    calllog.within_retention(first, "re-priced")
    provider, model = body.get("provider") or None, body.get("model") or None
    if provider is not None and provider not in provider_registry.names():
        raise InvalidRequest(f"`provider` must be one of {', '.join(provider_registry.names())}")
    if model is not None and not isinstance(model, str):
        raise InvalidRequest("`model` must be a string")
    if model is not None:
        caller_names.check(model, "`model`")
    # Imported here: genai-prices and pydantic cost app.py's cold import ~60 ms that only this job needs.
    from chalicelib.gateway.price_overrides import load_overrides
    from chalicelib.gateway.pricing import price_call

    overrides = load_overrides()  # read now, and refused whole if broken: never re-price without them
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    calls = repriced = conflicts = 0
    before = after = Decimal(0)
    for done, day in enumerate(days, start=1):
        for call in calllog.calls_of_day(day, filter_condition=calllog.filters(provider=provider, model=model), newest_first=False):
            calls += 1
            usage = stored_usage(call)
            if usage is None:
                continue
            ts = parse_precise(call.ts)
            price = price_call(call.provider, call.model, usage, ts, overrides, call.provider_cost_usd)
            was = call.cost_usd
            if (price.cost_usd, price.source, price.estimated_cost_usd) == (
                    was, call.price_source, call.estimated_cost_usd):
                continue
            if price.cost_usd is None:  # today's data knows no price: the one the call has is the best there is
                continue
            if not calllog.set_price(call, price.cost_usd, price.source, price.version, clock.now(),
                                     price.estimated_cost_usd, price.price_drift):
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
                       output_tokens=call.output_tokens, reasoning_tokens=call.reasoning_tokens,
                       input_audio_tokens=call.input_audio_tokens or 0,
                       output_audio_tokens=call.output_audio_tokens or 0,
                       web_searches=call.web_searches or 0, service_tier=call.service_tier, speed=call.speed,
                       input_image_tokens=call.input_image_tokens or 0,
                       output_image_tokens=call.output_image_tokens or 0,
                       images=call.images or 0, image_variant=call.image_variant)
    if not (call.priced or call.usage_reported or any(usage.counts().values())) or not usage.plausible():
        return None
    return usage
