"""Hard budgets and rate limits at concurrency: four proxy processes (four containers) on one local stack, 100
official-SDK calls in flight against a hard budget worth ten calls' worst case.

Each call's usage is scripted to cost exactly its worst case (the body's bytes in, `max_tokens` out), so a
budget of 10.5 worst cases has room for ten calls and no more, however they interleave: a daily budget and a
60-minute window budget alike."""
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import openai
import pytest

from local.stack import free_port
from tests.conftest import ROOT

PROCESSES, PER_PROCESS = 4, 25
MAX_TOKENS = 40
M = Decimal("0.000001")
MESSAGES = [{"role": "user", "content": "How much can one call cost?"}]


class Proxy:
    """One more proxy process (`python -m chalicelib.gateway.serve`, as the proxy function runs) on the stack's
    moto and the test's upstream: a container of its own, with its own caches."""

    def __init__(self, stack, upstream_url):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in stack.env.items() if k not in ("TOLLGATE_PORT", "TOLLGATE_DATA_DIR")}
        env |= {"TOLLGATE_AWS_ENDPOINT": stack.banner_value("AWS"), "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1", "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
                "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING",
                "TOLLGATE_OPENAI_BASE_URL": f"{upstream_url}/v1"}
        self.log = open(stack.data_dir.parent / f"proxy-{self.port}.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chalicelib.gateway.serve", "chalicelib.gateway.proxy_app:app", "--port",
             str(self.port), "--log-level", "warning"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self):
        for _ in range(600):
            assert self.process.poll() is None, open(self.log.name).read()
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(open(self.log.name).read())

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def proxies(stack, fake_upstream):
    started = [Proxy(stack, fake_upstream.url) for _ in range(PROCESSES)]
    try:
        for proxy in started:
            proxy.wait_ready()
        # The SDK's response models are built on first use, which 100 threads at once may race on: build them now.
        warm = sdk(started[0], new_key(stack, "warm")["key"])
        warm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX_TOKENS)
        for _ in warm.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX_TOKENS,
                                              stream=True):
            pass
        yield started
    finally:
        for proxy in started:
            proxy.stop()


def sdk(proxy, key):
    return openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=key, max_retries=0, timeout=60)


def hard_budget(stack, budget_id, account, limit_usd, period="daily"):
    body = {"scope": "account", "scope_id": account, "period": period, "limit_usd": str(limit_usd),
            "thresholds": [1.0], "mode": "hard", "channels": []}
    body |= {"window_minutes": 60} if period == "window" else {}
    assert stack.admin("PUT", f"/admin/budgets/{budget_id}", json=body).status_code == 200


def new_key(stack, account):
    response = stack.admin("POST", "/admin/keys", json={"name": account, "account": account})
    assert response.status_code == 201
    return response.json()


def worst_case(stack, proxies, account):
    """What the gateway holds for one of these calls, as its refusal states it: a probe key under a $0.000001
    budget. Also the body's bytes, read back from it ($2.50 per million input tokens, $10 output, gpt-4o)."""
    key = new_key(stack, account)["key"]
    hard_budget(stack, f"{account}-probe", account, M)
    time.sleep(6)  # past the proxies' budget cache
    with pytest.raises(openai.APIStatusError) as refused:
        sdk(proxies[0], key).chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=MAX_TOKENS)
    assert refused.value.status_code == 429
    worst = Decimal(refused.value.response.headers["X-Tollgate-Worst-Case-USD"])
    body_bytes = (worst - MAX_TOKENS * 10 * M) / (Decimal("2.5") * M)
    assert body_bytes == int(body_bytes) and body_bytes > 0
    return worst, int(body_bytes)


def budget_view(stack, budget_id):
    answer = httpx.get(f"{stack.url}/api/budgets", headers={"X-Dashboard-Key": stack.env["TOLLGATE_ADMIN_KEY"]})
    return next(b for b in answer.json()["budgets"] if b["budget_id"] == budget_id)


def settled(stack, budget_id):
    """The budget once no call holds anything (the calls' records are written as they end)."""
    for _ in range(300):
        view = budget_view(stack, budget_id)
        if view["reserved_usd"] == "0":
            return view
        time.sleep(0.1)
    return view


def logged_cost(stack, account):
    calls = stack.calls(account=account, limit=500)
    return calls, sum((Decimal(c["cost_usd"]) for c in calls if c["cost_usd"] is not None), Decimal(0))


def sent_upstream(upstream):
    return sum(1 for seen in upstream.requests if seen.method == "POST")


def run_burst(proxies, key, one):
    """PER_PROCESS calls at once on each process: 100 in flight. Each process knows the key first (a GET of the
    models authenticates and costs nothing), as a warm container does: 100 cold key reads at once are not what
    this measures."""
    for proxy in proxies:
        sdk(proxy, key).models.list()
    jobs = [(proxy, n) for proxy in proxies for n in range(PER_PROCESS)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(lambda job: one(sdk(job[0], key), job[1]), jobs))


@pytest.mark.parametrize("period", ["daily", "window"])
def test_100_calls_in_flight_over_4_processes_never_pass_a_hard_budget(stack, proxies, upstream, period):
    worst, body_bytes = worst_case(stack, proxies, f"probe-{period}")
    account = f"burst-{period}"
    made = new_key(stack, account)
    hard_budget(stack, account, account, worst * Decimal("10.5"), period)
    for _ in range(PROCESSES * PER_PROCESS):  # each call costs its worst case, and is slow enough to overlap
        upstream.enqueue(usage={"prompt_tokens": body_bytes, "completion_tokens": MAX_TOKENS}, delay_seconds=0.5)
    time.sleep(6)  # past the proxies' budget cache

    def one(client, _):
        try:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=MAX_TOKENS)
            return 200
        except openai.APIStatusError as error:
            assert error.response.json()["error"]["type"] == "budget_exceeded"
            return error.status_code

    statuses = run_burst(proxies, made["key"], one)
    served = statuses.count(200)
    assert set(statuses) <= {200, 429} and 1 <= served <= 10
    assert sent_upstream(upstream) == served  # every refusal came before anything went upstream
    view = settled(stack, account)
    calls, cost = logged_cost(stack, account)
    assert len(calls) == PROCESSES * PER_PROCESS
    assert Decimal(view["spent"]) == cost == served * worst <= Decimal(view["limit"])
    assert view["reserved_usd"] == "0"


def test_streams_that_break_or_are_abandoned_settle_exactly_too(stack, proxies, upstream):
    worst, body_bytes = worst_case(stack, proxies, "probe2")
    made = new_key(stack, "broken")
    hard_budget(stack, "broken", "broken", worst * Decimal("10.5"))
    for n in range(PROCESSES * PER_PROCESS):  # every other upstream stream breaks after two events
        upstream.enqueue(usage={"prompt_tokens": body_bytes, "completion_tokens": MAX_TOKENS}, delay_seconds=0.5,
                         drop_stream_after_events=2 if n % 2 else None)
    time.sleep(6)

    def one(client, n):
        try:
            stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=MAX_TOKENS,
                                                    stream=True)
        except openai.APIStatusError as error:
            return error.status_code
        try:
            for _ in stream:
                if n % 3 == 0:  # the caller hangs up after the first event
                    break
        except openai.APIError:
            pass
        finally:
            stream.close()
        return 200

    statuses = run_burst(proxies, made["key"], one)
    served = statuses.count(200)
    assert set(statuses) <= {200, 429} and served >= 1
    assert sent_upstream(upstream) == served
    view = settled(stack, "broken")
    calls, cost = logged_cost(stack, "broken")
    assert len(calls) == PROCESSES * PER_PROCESS
    ended = [c["error_type"] for c in calls if c["status"] == 200]
    assert set(ended) <= {None, "client_disconnected", "stream_interrupted"}
    # A broken or abandoned stream costs less than its worst case (its usage never came), so its settlement gives
    # room back and more than ten may be served; only whole answers cost the full worst case: ten at most.
    assert ended.count(None) <= 10 and len(ended) == served
    assert Decimal(view["spent"]) == cost <= Decimal(view["limit"])
    assert view["reserved_usd"] == "0"


def test_a_keys_requests_per_minute_hold_across_4_processes(stack, proxies, upstream):
    made = new_key(stack, "paced")
    assert stack.admin("PUT", f"/admin/keys/{made['key_id']}/limits", json={"rpm": 7}).status_code == 200
    if time.gmtime().tm_sec >= 45:  # the burst counts within one UTC minute
        time.sleep(61 - time.gmtime().tm_sec)

    def one(client, _):
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX_TOKENS)
            return 200
        except openai.RateLimitError as error:
            headers = error.response.headers
            assert error.response.json()["error"]["type"] == "rate_limit_exceeded"
            assert int(headers["retry-after"]) >= 1 and headers["x-ratelimit-limit-requests"] == "7"
            return 429

    statuses = run_burst(proxies, made["key"], one)
    assert statuses.count(200) == 7 and statuses.count(429) == PROCESSES * PER_PROCESS - 7
    assert sent_upstream(upstream) == 7


def test_account_and_team_limits_and_a_hard_budget_hold_together_across_4_processes(stack, proxies, upstream):
    """One key in account `crowd`, one in `crowd2`, both in team `squad`: the team allows 9 requests a minute, the
    account `crowd` 5, and `crowd2` has a hard budget. Each call takes its counters and its hold in one transaction,
    so the team serves exactly 9 however the 100 calls interleave, `crowd` at most 5 of them, and a call refused by
    one limit counts on none."""
    first = stack.admin("POST", "/admin/keys", json={"name": "crowd", "account": "crowd", "team": "squad"}).json()
    second = stack.admin("POST", "/admin/keys", json={"name": "crowd2", "account": "crowd2", "team": "squad"}).json()
    assert stack.admin("PUT", "/admin/limits/team/squad", json={"rpm": 9}).status_code == 200
    assert stack.admin("PUT", "/admin/limits/account/crowd", json={"rpm": 5}).status_code == 200
    hard_budget(stack, "crowd2", "crowd2", Decimal(100))
    time.sleep(6)  # past the proxies' budget and limit caches
    if time.gmtime().tm_sec >= 45:  # the burst counts within one UTC minute
        time.sleep(61 - time.gmtime().tm_sec)
    keys = {first["key"]: "crowd", second["key"]: "crowd2"}
    for proxy in proxies:
        for key in keys:
            sdk(proxy, key).models.list()

    def one(job):
        proxy, key = job
        try:
            sdk(proxy, key).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX_TOKENS)
            return keys[key], 200
        except openai.RateLimitError as error:
            assert error.response.json()["error"]["type"] == "rate_limit_exceeded"
            assert int(error.response.headers["retry-after"]) >= 1
            return keys[key], 429

    jobs = [(proxy, list(keys)[n % 2]) for proxy in proxies for n in range(PER_PROCESS)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(one, jobs))
    served = [account for account, status in results if status == 200]
    assert len(served) == 9 and served.count("crowd") <= 5 and len(results) == PROCESSES * PER_PROCESS
    assert sent_upstream(upstream) == 9
    view = settled(stack, "crowd2")
    assert view["reserved_usd"] == "0"
    _, cost = logged_cost(stack, "crowd2")
    assert Decimal(view["spent"]) == cost
