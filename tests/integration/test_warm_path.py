"""The proxy's warm path: with the key, budget and secret caches warm, the checks before upstream run on the event
loop (no hop to a worker thread, no AWS request), and the call log's write is the call's one hop and one request.
A cold cache or a hard budget's reservation still goes to a worker thread. Counted, never timed."""
import json

import anyio
import pytest

from chalicelib.gateway import proxy

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def hops(monkeypatch):
    """The functions the proxy hands to a worker thread, in order."""
    handed = []
    original = proxy.run_sync

    async def counting(function, *args, **kwargs):
        handed.append(function.__name__)
        return await original(function, *args, **kwargs)

    monkeypatch.setattr(proxy, "run_sync", counting)
    return handed


def test_a_warm_call_checks_inline_and_hops_only_to_write_its_record(gateway, upstream, hops, aws_calls):
    key = gateway.new_key()
    assert gateway.call("/openai/v1/chat/completions", BODY, key).status_code == 200  # loads the caches
    assert hops == ["_admit", "write_call"]  # cold: the key's read stopped the inline try
    hops.clear()
    aws_calls.clear()

    assert gateway.call("/openai/v1/chat/completions", BODY, key).status_code == 200
    assert hops == ["write_call"]
    assert aws_calls == ["PutItem"]


def test_a_warm_stream_reaches_its_first_byte_without_a_hop(gateway, upstream, hops, aws_calls):
    key = gateway.new_key()
    gateway.call("/openai/v1/chat/completions", BODY, key)
    hops.clear()
    aws_calls.clear()
    request = proxy.IncomingRequest("POST", {"authorization": f"Bearer {key}", "content-type": "application/json"},
                                    json.dumps({**BODY, "stream": True}).encode(), {})

    async def first_byte_then_rest():
        answer = await proxy.handle("openai", "v1/chat/completions", request)
        await anext(answer.stream)
        before = (list(hops), list(aws_calls))
        async for _ in answer.stream:
            pass
        return before

    assert anyio.run(first_byte_then_rest) == ([], [])
    assert hops == ["write_call"]


def test_a_hard_budget_reserves_in_a_worker_thread(gateway, upstream, hops, aws_calls):
    key = gateway.new_key(account="capped")
    status, _ = gateway.admin("put", "/admin/budgets/capped", {
        "scope": "account", "scope_id": "capped", "period": "daily", "limit_usd": "100", "mode": "hard",
        "thresholds": [1.0], "channels": []})
    assert status == 200
    gateway.call("/openai/v1/chat/completions", BODY, key)
    hops.clear()
    aws_calls.clear()

    assert gateway.call("/openai/v1/chat/completions", BODY, key).status_code == 200
    assert hops == ["_admit", "write_call"]  # the reservation is a request: the checks ran again in a thread
    assert aws_calls == ["TransactWriteItems", "TransactWriteItems"]  # the hold, then the record that settles it


def test_init_and_the_first_call_share_one_botocore_session(gateway, upstream, monkeypatch, aws_calls):
    """pynamodb makes a session per model (keys, budgets, rate limits, calls) and the SSM read made one more: 60-100 ms
    each on a cold start. The proxy's init (chalicelib/gateway/warmup.py) makes them all on one, and one DynamoDB
    client for the models (alike: TableMeta), one for transactions (pynamodb's defaults) and one for SSM."""
    import boto3
    import botocore.session

    from chalicelib import aws, secret_store
    from chalicelib.gateway import warmup
    from chalicelib.ledger import ApiKey, Budget, CallRecord, ScopeLimit, budget_cache, rate_limits
    from tests.conftest import UPSTREAM_KEY
    from tests.integration.conftest import reload_settings

    key = gateway.new_key()
    boto3.client("ssm").put_parameter(Name="/tollgate/test/openai", Value=UPSTREAM_KEY, Type="SecureString")
    monkeypatch.delenv("TOLLGATE_OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("TOLLGATE_OPENAI_API_KEY_PARAMETER", "/tollgate/test/openai")
    reload_settings()
    for model in (ApiKey, Budget, ScopeLimit, CallRecord):  # as in a fresh process
        monkeypatch.setattr(model, "_connection", None)
    budget_cache.clear()
    rate_limits.limit_cache.clear()
    secret_store.secrets.clear()
    aws.botocore_session.cache_clear()
    sessions = []
    made = botocore.session.Session.__init__

    def counting(self, *args, **kwargs):
        sessions.append(self)
        made(self, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "__init__", counting)
    clients = []
    create_client = botocore.session.Session.create_client

    def counting_clients(self, service, *args, **kwargs):
        clients.append(service)
        return create_client(self, service, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "create_client", counting_clients)

    del aws_calls[:]
    warmup.warm()
    assert sorted(aws_calls) == ["GetParameter", "Query", "Scan"]  # the provider key, rate limits, budgets
    del aws_calls[:]
    assert gateway.call("/openai/v1/chat/completions", BODY, key).status_code == 200
    assert "GetParameter" not in aws_calls  # the first call found its provider key read by init
    assert len(sessions) == 1
    assert sorted(clients) == ["dynamodb", "dynamodb", "ssm"]
    assert secret_store.secrets.client() is not None
