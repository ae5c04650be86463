"""Time to first byte of a streamed call through the gateway against the same call straight to the mock
upstream, whose events are spaced like a model's, with a bare relay on the same libraries as the floor
(`bench.relay`); and the AWS requests the gateway makes before that byte.

"First byte" is the first SSE event's bytes reaching the client (the first body chunk it reads). The
events come 2 ms apart, so a gateway that held events back would show it here. Calls rotate through
the three paths (and Gemini's and Bedrock's, direct and through the gateway, in the same run), so drift on a
shared machine hits them alike. Each stream is read to its end.

AWS requests come from the stack's own log (`bench.stack`): those it started between a call's send and
its first byte, from the threads that serve calls. With warm caches there must be none; the key, budget and
rate-limit caches expire every few seconds, and the call that refreshes them reads a key (GetItem), the
budgets (Scan) or the rate limits (Query) first, so those are counted apart, with what else was seen.

The price of exactness (issue #29): in the same rotation, the same streamed call with a key under a hard budget
makes one request before its first byte (the hold's TransactWriteItems), against none for the demo key; the time it
adds to the first event is the budgeted key's minus the unbudgeted one's at the same quantile.
"""
from __future__ import annotations

import json
import time
from collections import Counter

import httpx

from bench.relay import Relay
from bench.stack import BACKGROUND_THREADS, RunningStack
from bench.upstream import Upstream
from local.stack import MOCK_UPSTREAM_KEY

EVENT_INTERVAL_S = 0.002
TARGETS_MS = {50: 2, 95: 5}
CACHE_REFRESHES = {("GetItem", "keys"), ("Scan", "budgets"), ("Query", "aggregates")}  # key, budget, rate-limit caches
HOLD = ("TransactWriteItems", "aggregates")  # a hard-budgeted call's one request before upstream
BODY = json.dumps({"model": "gpt-4o-mini", "stream": True,
                   "messages": [{"role": "user", "content": "benchmark"}]}).encode()
# The other wire formats, in the same run (issue #27): (name, path on the mock = path after the provider's prefix,
# body, the headers a direct call to the mock needs). Bedrock's mock wants a SigV4-shaped header, not a real one.
OTHER_FORMATS = (
    ("Gemini", "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
     {"contents": [{"role": "user", "parts": [{"text": "benchmark"}]}]}, {"x-goog-api-key": MOCK_UPSTREAM_KEY}),
    ("Bedrock", "/bedrock/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream",
     {"messages": [{"role": "user", "content": [{"text": "benchmark"}]}]},
     {"authorization": "AWS4-HMAC-SHA256 Credential=bench/20261207/us-east-1/bedrock/aws4_request",
      "x-amz-date": "20261207T000000Z"}),
)


def first_event(client: httpx.Client, path: str, body: bytes = BODY) -> tuple[int, int]:
    """(ns at send, ns at the first body bytes) of one streamed call, read to its end."""
    sent = time.monotonic_ns()
    with client.stream("POST", path, content=body) as response:
        response.raise_for_status()
        chunks = response.iter_raw()
        next(chunks)
        first = time.monotonic_ns()
        for _ in chunks:
            pass
    return sent, first


def aws_before_first_byte(stack: RunningStack, calls: list[tuple[int, int]],
                          expected: tuple[tuple[str, str], ...] = ()) -> tuple[int, int, Counter, Counter]:
    """(calls whose AWS requests before their first byte were exactly `expected`, calls that also refreshed a cache,
    every request seen, what the other calls made)."""
    requests = [r for r in stack.aws_requests() if r.thread not in BACKGROUND_THREADS]
    warm, refreshed, seen, odd = 0, 0, Counter(), Counter()
    for sent, first in calls:
        ops = [(r.operation, r.table.rsplit("-", 1)[-1]) for r in requests if sent <= r.at_ns <= first]
        seen.update(ops)
        own = [op for op in ops if op not in CACHE_REFRESHES]
        warm += ops == list(expected)
        refreshed += ops != list(expected) and own == list(expected)
        odd.update(own if own != list(expected) else [])
    return warm, refreshed, seen, odd


def hard_budgeted(stack: RunningStack) -> httpx.Client:
    """A client with a key of its own account, under a hard daily budget far above what the bench spends: each of
    its calls holds its worst case before upstream and settles it with its record."""
    admin = {"Authorization": f"Bearer {stack.admin_key}"}
    made = httpx.post(f"{stack.api}/admin/keys", headers=admin, json={"name": "bench hard", "account": "bench-hard"})
    made.raise_for_status()
    httpx.put(f"{stack.api}/admin/budgets/bench-hard", headers=admin, json={
        "scope": "account", "scope_id": "bench-hard", "period": "daily", "limit_usd": "1000000",
        "thresholds": [1.0], "mode": "hard", "channels": []}).raise_for_status()
    return httpx.Client(base_url=stack.api, headers={"Authorization": f"Bearer {made.json()['key']}",
                                                     "Content-Type": "application/json"})


def measure(stack: RunningStack, upstream: Upstream, count: int, pct) -> tuple[list[tuple[str, ...]],
                                                                                list[tuple[str, ...]]]:
    upstream.script(event_interval_seconds=EVENT_INTERVAL_S)
    gateway = httpx.Client(base_url=stack.api, headers={"Authorization": f"Bearer {stack.demo_key}",
                                                        "Content-Type": "application/json"})
    direct = httpx.Client(base_url=upstream.url, headers={"Authorization": f"Bearer {MOCK_UPSTREAM_KEY}",
                                                          "Content-Type": "application/json"})
    relay = Relay(upstream.url, MOCK_UPSTREAM_KEY)
    bare = httpx.Client(base_url=relay.url, headers={"Content-Type": "application/json"})
    paths = [(direct, "/v1/chat/completions", BODY), (bare, "/v1/chat/completions", BODY),
             (gateway, "/openai/v1/chat/completions", BODY)]
    for _, path, body, headers in OTHER_FORMATS:
        raw = json.dumps(body).encode()
        paths += [(httpx.Client(base_url=upstream.url, headers={"Content-Type": "application/json", **headers}),
                   path, raw), (gateway, path, raw)]
    paths.append((hard_budgeted(stack), "/openai/v1/chat/completions", BODY))  # last: the price of exactness
    try:
        for _ in range(20):  # warm connections and caches
            for client, path, body in paths:
                first_event(client, path, body)
        started = time.monotonic()
        measured: list[list[tuple[int, int]]] = [[] for _ in paths]
        for _ in range(count):  # every path in turn: drift on a shared machine hits them alike
            for calls, (client, path, body) in zip(measured, paths):
                calls.append(first_event(client, path, body))
        seconds = time.monotonic() - started
        around, floor, through = measured[:3]
    finally:
        relay.stop()
        upstream.script()

    def ms(calls):
        return [(first - sent) / 1e6 for sent, first in calls]

    label = f"streamed, to the first event ({EVENT_INTERVAL_S * 1000:.0f} ms apart)"
    latency = []
    for q in (50, 95, 99):
        added = pct(ms(through), q) - pct(ms(around), q)
        bare_added = pct(ms(floor), q) - pct(ms(around), q)
        target = TARGETS_MS.get(q)
        verdict = "" if target is None else f"≤ {target}: {'met' if added <= target else 'MISSED'}"
        latency.append((label, f"p{q}", f"{pct(ms(around), q):.1f}", f"{pct(ms(through), q):.1f}",
                        f"{added:.1f} (bare relay {bare_added:.1f})", verdict))
    for n, (name, *_) in enumerate(OTHER_FORMATS):
        direct_calls, gateway_calls = measured[3 + 2 * n], measured[4 + 2 * n]
        for q in (50, 95):
            latency.append((f"streamed via {name}, to the first event", f"p{q}", f"{pct(ms(direct_calls), q):.1f}",
                            f"{pct(ms(gateway_calls), q):.1f}",
                            f"{pct(ms(gateway_calls), q) - pct(ms(direct_calls), q):.1f}", ""))
    held = measured[-1]
    for q in (50, 95):
        latency.append(("streamed, a hard-budgeted key against an unbudgeted one, to the first event", f"p{q}",
                        f"{pct(ms(through), q):.1f}", f"{pct(ms(held), q):.1f}",
                        f"{pct(ms(held), q) - pct(ms(through), q):.1f}", ""))
    warm, refreshed, seen, _ = aws_before_first_byte(stack, through)
    other = {op: n for op, n in seen.items() if op not in CACHE_REFRESHES}
    met = warm + refreshed == count and not other
    found = ", ".join(f"{n} {op} on {table}" for (op, table), n in sorted(seen.items())) or "none"
    exact, exact_refreshed, _, odd = aws_before_first_byte(stack, held, (HOLD,))
    streaming = [
        ("AWS requests before the first byte, caches warm", f"0 on each of {warm} calls", "0",
         "met" if met else f"MISSED: {other}"),
        (f"streamed calls that found the key, budget or rate-limit cache expired ({_ttl()}) and reloaded it first",
         f"{count - warm} of {count} in {seconds:.0f} s: {found}", "-", ""),
        ("AWS requests before the first byte, a hard-budgeted key, caches warm",
         f"1 (TransactWriteItems) on each of {exact} calls; {exact_refreshed} also reloaded a cache", "1",
         "met" if exact + exact_refreshed == count else
         f"MISSED: {count - exact - exact_refreshed} calls made {dict(odd)} (caches' reloads left out)"),
    ]
    return latency, streaming


def _ttl() -> str:
    from chalicelib.settings import Settings

    defaults = Settings()
    return f"{defaults.key_cache_seconds:g} s and {defaults.budget_cache_seconds:g} s"
