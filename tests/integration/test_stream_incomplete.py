"""A stream that ends cleanly without its final event (#26): the transport closes properly, but no `message_stop`
(Anthropic), `[DONE]` (OpenAI chat) or `response.completed` (Responses) arrived. The call is logged as
`stream_incomplete`, priced as a lower bound from the usage seen, and counted in the reports' errors by type."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from chalicelib.gateway import upstream as upstream_module
from chalicelib.ledger.models import CallRecord
from tests.conftest import ADMIN_KEY
from tests.integration.helpers import roll_up, stored_counters

EVENTS = Path(__file__).resolve().parents[1] / "events"
M = Decimal("0.000001")  # one token at $1 per million


def events_before(name: str, last_kept: str) -> bytes:
    """The provider's stream, cut cleanly after the first event whose text holds `last_kept`."""
    blocks = EVENTS.joinpath(name).read_text().strip().split("\n\n")
    cut = next(n for n, block in enumerate(blocks) if last_kept in block)
    return ("\n\n".join(blocks[:cut + 1]) + "\n\n").encode()


def serve(body: bytes) -> None:
    async def pieces():  # the stream arrives in pieces, then the transport closes cleanly
        for i in range(0, len(body), 50):
            yield body[i:i + 50]

    def provider(request):
        return httpx.Response(200, content=pieces(), headers={"Content-Type": "text/event-stream"})

    upstream_module.use_transport(httpx.MockTransport(provider))


CASES = {
    # Anthropic: message_start's usage (25 input, 1,000 cache reads, 1 output) is all that was seen.
    # claude-sonnet-4-5: $3 input, $0.30 cache read, $15 output per Mtok:
    # 25 × 3 + 1000 × 0.30 + 1 × 15 = 75 + 300 + 15 = 390 µ$ → $0.00039, a lower bound.
    "anthropic": ("/anthropic/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": []},
                  events_before("anthropic_stream.sse", "content_block_stop"), 25 * 3 * M + 1000 * Decimal("0.3") * M
                  + 1 * 15 * M, (25, 1000, 1)),
    # OpenAI chat: the content and the finish chunk came, the usage chunk and [DONE] did not: nothing to price.
    "openai": ("/openai/v1/chat/completions", {"model": "gpt-4o-mini", "messages": []},
               events_before("openai_chat_stream_usage.sse", '"finish_reason":"stop"'), None, (0, 0, 0)),
    # Responses: the text came, `response.completed` (which holds the usage) did not.
    "responses": ("/openai/v1/responses", {"model": "gpt-4o", "input": "hi"},
                  events_before("openai_responses_stream.sse", "response.output_item.done"), None, (0, 0, 0)),
}


@pytest.mark.parametrize("case", CASES)
def test_a_stream_without_its_final_event_is_stream_incomplete_and_priced_as_seen(gateway, upstream, case):
    path, body, sse, by_hand_usd, (uncached, cache_read, output) = CASES[case]
    serve(sse)
    key = gateway.new_key(account="acme")
    response = gateway.call(path, {**body, "stream": True}, key)
    assert response.status_code == 200
    text = response.body.decode()
    *relayed, trailer = text.rstrip("\n").split("\n\n")
    assert "\n\n".join(relayed) + "\n\n" == sse.decode()  # the caller got every event that came
    [call] = list(CallRecord.scan())
    assert call.error_type == "stream_incomplete" and call.status == 200 and call.stream
    assert (call.input_tokens, call.cache_read_tokens, call.output_tokens) == (uncached, cache_read, output)
    assert call.cost_usd == by_hand_usd
    stated = json.loads(trailer.removeprefix(": tollgate "))
    assert stated["cost_usd"] == (None if by_hand_usd is None else format(by_hand_usd.normalize(), "f"))


def test_a_complete_stream_is_no_error(gateway, upstream):
    serve(EVENTS.joinpath("anthropic_stream.sse").read_bytes())
    path, body, *_ = CASES["anthropic"]
    response = gateway.call(path, {**body, "stream": True}, gateway.new_key())
    assert response.status_code == 200
    [call] = list(CallRecord.scan())
    assert call.error_type is None and call.output_tokens == 15


def test_reports_count_incomplete_streams_like_the_other_error_types(gateway, upstream):
    key = gateway.new_key(account="acme")
    for case in ("anthropic", "openai"):
        path, body, sse, *_ = CASES[case]
        serve(sse)
        assert gateway.call(path, {**body, "stream": True}, key).status_code == 200
    roll_up()
    today = datetime.now(timezone.utc).date().isoformat()
    summary = json.loads(gateway.client.http.get(f"/api/summary?start={today}&end={today}",
                                                 headers={"X-Dashboard-Key": ADMIN_KEY}).body)
    assert summary["calls"] == 2 and summary["errors"] == 2 and summary["error_rate"] == 1
    assert summary["cost_usd"] == "0.00039" and summary["unpriced_calls"] == 1  # the lower bound, and one unpriced
    day = stored_counters()[("global", "all", today)]
    assert day["err|stream_incomplete"] == 2  # by type, as every other error type is kept
