"""The dashboard in headless Chromium (Debian's, driven by playwright) on the local stack after SDK calls."""
import calendar
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest

from local.build_dashboard import build
from tests.conftest import ADMIN_KEY, ROOT, UPSTREAM_KEY
from tests.e2e.conftest import RunningStack

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync"]
HOSTILE = '<img src=x onerror="document.title=1">'
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (make browser)")


@pytest.fixture
def dashboard_stack(fake_upstream, tmp_path):
    build()  # the page under test is the source in dashboard/, not an older build
    env = {"TOLLGATE_OPENAI_BASE_URL": f"{fake_upstream.url}/v1", "TOLLGATE_OPENAI_API_KEY": UPSTREAM_KEY}
    stack = RunningStack(env, tmp_path / "data").start()
    yield stack
    stack.stop()


def read(stack, path, key=ADMIN_KEY, **params):
    response = httpx.get(f"{stack.url}{path}", params=params, headers={"X-Dashboard-Key": key})
    assert response.status_code == 200, response.text
    return response.json()


def summary(stack, **params):
    return read(stack, "/api/summary", hours=24, **params)


def test_dashboard_shows_filters_acknowledges_and_keeps_text_as_text(dashboard_stack, upstream):
    from playwright.sync_api import sync_playwright

    stack = dashboard_stack
    key = stack.admin("POST", "/admin/keys", json={"name": "ui", "account": "ui"}).json()["key"]
    client = openai.OpenAI(base_url=f"{stack.url}/openai/v1", api_key=key)
    calls = [("gpt-4o", (1000, 200), False)] * 3 + [("gpt-4o-mini", (500, 50), n == 1) for n in range(2)]
    for model, usage, stream in calls + [(HOSTILE, (10, 10), True)]:  # this stream arrives in one burst
        upstream.enqueue(usage={"prompt_tokens": usage[0], "completion_tokens": usage[1]},
                         event_interval_seconds=0 if model == HOSTILE else 0.05)
        answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                                stream=stream, extra_headers={
                                                    "X-Tollgate-Tags": "note=<b>bold</b>", "X-Tollgate-User": "dev",
                                                    "X-Tollgate-Session": "<i>s-1"})
        if stream:
            list(answer)
    deadline = time.monotonic() + 30
    # the budget reads the account's items, which fold apart from all traffic's: wait for those
    while summary(stack, account="ui")["calls"] < 6 and time.monotonic() < deadline:
        time.sleep(0.2)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    httpx.put(f"{stack.url}/admin/budgets/ui-daily", headers=admin, json={
        "scope": "account", "scope_id": "ui", "period": "daily", "limit_usd": "0.01", "thresholds": [0.5]})
    httpx.post(f"{stack.url}/admin/jobs/evaluate", headers=admin, json={}).raise_for_status()
    # opened by that run, or by the stack's own minute tick between the PUT and it
    assert [a for a in read(stack, "/api/alerts", state="open")["alerts"] if a["rule"] == "budget"]
    expected = summary(stack)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1700}, bypass_csp=True)
        dialogs, errors = [], []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{stack.url}/dashboard/")
        page.wait_for_selector("#login:not([hidden])")
        page.fill("#key-input", "not-a-key")
        page.click("#login-form button")
        page.wait_for_selector("#banner:not([hidden])")
        assert "refused" in page.inner_text("#banner")

        page.fill("#key-input", ADMIN_KEY)
        page.click("#login-form button")
        page.wait_for_selector("body[data-refreshes]")
        card = lambda metric: page.inner_text(f'[data-metric="{metric}"] .value')  # noqa: E731
        assert card("calls") == str(expected["calls"]) == "6"
        assert card("cost") == f"${expected['cost_usd']}"
        assert card("tokens") == f"{expected['tokens']['total']:,}"
        charts = page.evaluate("() => Object.fromEntries(Object.entries(window.tollgate.charts).map("
                               "([id, c]) => [id, c.data.datasets.reduce((n, d) => n + d.data.length, 0)]))")
        assert set(charts) == {"chart-cost", "chart-tokens", "chart-models", "chart-model-tokens"}
        assert all(points > 0 for points in charts.values())

        assert all(t.endswith(" ms") for t in page.locator("#calls tbody td.ttft").all_inner_texts())
        # tokens/s: only where generation took measurable time (50 ms or more after the first token)
        speeds = dict(page.locator("#calls tbody tr").evaluate_all(
            "rows => rows.map(r => [r.dataset.call, r.querySelector('td.speed').textContent])"))
        for row in stack.calls(limit=50):
            generating = row["ttft_ms"] is not None and row["latency_ms"] - row["ttft_ms"] >= 50
            measured = row["output_tokens_per_s"] is not None and generating
            assert (speeds[row["call_id"]] != "") == measured, (row, speeds[row["call_id"]])
        assert any(speeds.values())  # the stream with paced events (the burst's depends on this machine's load)
        assert page.evaluate("""() => [tokensPerSecond({output_tokens_per_s: 48000, latency_ms: 102, ttft_ms: 100}),
            tokensPerSecond({output_tokens_per_s: null, latency_ms: 90, ttft_ms: 90}),
            tokensPerSecond({output_tokens_per_s: 80.5, latency_ms: 2600, ttft_ms: 100})]""") == ["", "", "80.5"]

        # recent calls show user, session and tags, as text, and filter over the loaded rows
        assert page.locator("#calls thead th").all_inner_texts()[3:6] == ["Account", "User", "Session"]
        assert set(page.locator("#calls tbody td.user").all_inner_texts()) == {"dev"}
        assert set(page.locator("#calls tbody td.session").all_inner_texts()) == {"<i>s-1"}
        assert set(page.locator("#calls tbody td.tags").all_inner_texts()) == {"note=<b>bold</b>"}
        assert page.locator("#calls b, #calls i").count() == 0
        page.fill("#calls-filter", "GPT-4O-MINI")
        assert set(page.locator("#calls tbody td.model").all_inner_texts()) == {"gpt-4o-mini"}
        assert page.inner_text("#calls-count") == "2 of 6 calls"
        page.fill("#calls-filter", "no such call")
        assert page.locator("#calls tbody tr").count() == 0 and page.locator("#calls-card > .empty").is_visible()
        page.fill("#calls-filter", "")
        assert page.locator("#calls tbody tr").count() == 6

        cells = page.locator("#calls tbody td.model").all_inner_texts()
        assert HOSTILE in cells and page.locator("#calls img").count() == 0
        assert page.title() == "Tollgate" and dialogs == []

        before = int(page.get_attribute("body", "data-refreshes"))
        page.select_option("#filter-model", "gpt-4o-mini")
        page.wait_for_selector(f'body:not([data-refreshes="{before}"])')
        assert card("calls") == "2" and card("cost") == f"${summary(stack, model='gpt-4o-mini')['cost_usd']}"
        assert set(page.locator("#calls tbody td.model").all_inner_texts()) == {"gpt-4o-mini"}
        page.select_option("#filter-model", "")
        page.wait_for_selector(f'body:not([data-refreshes="{before + 1}"])')

        page.locator("#calls th[data-sort='cost']").click()
        costs = page.locator("#calls tbody td.cost").all_inner_texts()
        assert costs[0] == max(costs, key=lambda c: float(c.strip("$")) if c != "—" else -1)

        alert = page.locator("#alerts li", has_text="Budget ui-daily")
        assert "Budget ui-daily" in alert.inner_text()
        alert.locator("button[data-action='ack']").click()
        page.wait_for_selector("#alerts li.acknowledged")
        states = httpx.get(f"{stack.url}/api/alerts", headers={"X-Dashboard-Key": ADMIN_KEY}).json()["alerts"]
        assert [a["state"] for a in states if a["rule"] == "budget"] == ["acknowledged"]

        with page.expect_download() as download:
            page.click("#export-csv")
        assert download.value.suggested_filename.endswith(".csv")

        # a month's chart has a bar slot for every day of the month, days without calls at zero; 30 d has 30
        today = datetime.now(timezone.utc).date()
        for button, days in (("[data-month='0']", [today.replace(day=n).isoformat()
                                                    for n in range(1, calendar.monthrange(today.year, today.month)[1] + 1)]),
                             ("[data-hours='720']", [(today - timedelta(days=n)).isoformat() for n in range(29, -1, -1)])):
            before = page.get_attribute("body", "data-refreshes")
            page.click(f".ranges button{button}")
            page.wait_for_selector(f'body:not([data-refreshes="{before}"])')
            chart = page.evaluate("() => { const c = window.tollgate.charts['chart-cost'].data;"
                                  " return [c.labels, c.datasets.map(d => d.data.length)]; }")
            assert chart[0] == days and set(chart[1]) == {len(days)}
        before = page.get_attribute("body", "data-refreshes")
        page.click(".ranges button[data-hours='24']")
        page.wait_for_selector(f'body:not([data-refreshes="{before}"])')

        page.click('#users button[data-user="dev"]')  # for the picture: who spent it, down to one call
        page.click('#sessions tbody button')
        page.locator("#session-calls tbody button").first.click()
        page.wait_for_selector("#call-view:not([hidden])")
        assert page.inner_text('#call-detail dd[data-field="session"]') == "<i>s-1"
        assert page.locator("#drill i, #call-detail b").count() == 0

        # the call reads in groups of labelled fields, not as API names
        groups = page.locator("#call-detail .call-group").evaluate_all(
            "groups => groups.map(g => [g.dataset.group, [...g.querySelectorAll('dt')].map(t => t.textContent)])")
        assert [name for name, _ in groups][:5] == ["who", "what", "tokens", "cost", "timing"]
        assert all("_" not in label for _, labels in groups[:5] for label in labels)
        assert page.inner_text('#call-detail [data-group="who"] dd[data-field="user"]') == "dev"
        assert page.inner_text('#call-detail [data-group="who"] dd[data-field="tags"]') == "note=<b>bold</b>"
        shown = read(stack, f"/api/calls/{page.inner_text('#call-detail dd[data-field=call_id]')}")
        total = sum(shown[kind] or 0 for kind in ("input_tokens", "cache_read_tokens", "cache_write_tokens",
                                                  "output_tokens", "reasoning_tokens"))
        assert page.inner_text('#call-detail [data-group="tokens"] dd[data-field="total_tokens"]') == f"{total:,}"

        # one way to write a time, everywhere on the page: "2026-12-07 14:03:05 UTC"
        stamps = re.findall(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}[0-9:.]*Z?(?: UTC)?", page.inner_text("body"))
        assert stamps and all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", stamp) for stamp in stamps), stamps
        assert errors == []
        (ROOT / "docs").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "docs" / "dashboard.png"), full_page=True)
        browser.close()


def chat(client, upstream, user, session, model="gpt-4o", usage=(1000, 200), stream=False) -> str:
    """One SDK call attributed to `user` and `session`; its call id."""
    upstream.enqueue(usage={"prompt_tokens": usage[0], "completion_tokens": usage[1]}, event_interval_seconds=0.05)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=stream,
        extra_headers={"X-Tollgate-User": user, "X-Tollgate-Session": session})
    if stream:
        list(raw.parse())
    return raw.headers["X-Tollgate-Call-Id"]


def sign_in(browser, stack, key):
    """A fresh browser profile with the dashboard open on `key`; the page and the errors it raises."""
    page = browser.new_context(viewport={"width": 1400, "height": 2400}).new_page()  # the page's own CSP applies
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{stack.url}/dashboard/")
    page.fill("#key-input", key)
    page.click("#login-form button")
    page.wait_for_selector("body[data-refreshes]")
    return page, errors


def query_of(request) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(request.url).query).items()}


def ms(value) -> str:
    """A duration as the page writes it (JavaScript's number, grouped by thousands)."""
    return "—" if value is None else f"{int(value) if float(value).is_integer() else value:,} ms"


def users_shown(page) -> list[str]:
    return page.locator("#users tbody button[data-user]").all_inner_texts()


def test_who_spent_it_from_a_user_to_a_session_to_a_call(dashboard_stack, upstream):
    """Top users → a user's sessions → a session's calls → one call, over real SDK calls; the range picker and the
    team filter reach the requests; an account-scoped key sees its own account only, in every card."""
    from playwright.sync_api import expect, sync_playwright

    stack = dashboard_stack
    keys = {account: stack.admin("POST", "/admin/keys", json={"name": account, "account": account, "team": team})
            .json()["key"] for account, team in (("acme", "search"), ("globex", "ops"))}
    acme = openai.OpenAI(base_url=f"{stack.url}/openai/v1", api_key=keys["acme"])
    globex = openai.OpenAI(base_url=f"{stack.url}/openai/v1", api_key=keys["globex"])
    first_session = [chat(acme, upstream, "alice", "a-1"), chat(acme, upstream, "alice", "a-1", usage=(3000, 400))]
    chat(acme, upstream, "alice", "a-2", model="gpt-4o-mini", usage=(500, 50), stream=True)
    bobs = chat(globex, upstream, "bob", "b-1", model="gpt-4o-mini", usage=(200, 20))
    assert stack.admin("POST", "/admin/credits/acme", json={"amount_usd": "5", "note": "trial"}).status_code == 200

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the users report and the sessions follow the stream
        users = {row["user"]: row for row in read(stack, "/api/usage/users", hours=24)["users"]}
        if users.get("alice", {}).get("calls") == 3 and users.get("bob", {}).get("calls") == 1 and \
                len(read(stack, "/api/sessions/a-1")["calls"]) == 2:
            break
        time.sleep(0.3)
    assert users["alice"]["calls"] == 3 and users["bob"]["calls"] == 1, users
    call = read(stack, f"/api/calls/{first_session[1]}")
    models = {row["model"]: row for row in read(stack, "/api/usage/models", hours=24)["models"]}
    forecast = read(stack, "/api/forecast")
    credits = read(stack, "/api/credits", account="acme")["credits"][0]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page, errors = sign_in(browser, stack, ADMIN_KEY)

        # top users, highest cost first, each cost as the API wrote it
        page.wait_for_selector('#users button[data-user="bob"]')
        assert users_shown(page) == ["alice", "bob"]
        assert page.locator("#users tbody td.cost").all_inner_texts() == [
            f"${users['alice']['cost_usd']}", f"${users['bob']['cost_usd']}"]

        # user → sessions → session → call
        page.click('#users button[data-user="alice"]')
        page.wait_for_selector('#sessions button[data-session="a-1"]')
        assert sorted(page.locator("#sessions tbody button").all_inner_texts()) == ["a-1", "a-2"]
        page.click('#sessions button[data-session="a-1"]')
        page.wait_for_selector("#session-view:not([hidden])")
        assert sorted(page.locator("#session-calls tbody button").evaluate_all(
            "buttons => buttons.map(b => b.dataset.call)")) == sorted(first_session)
        page.click(f'#session-calls button[data-call="{call["call_id"]}"]')
        page.wait_for_selector("#call-view:not([hidden])")
        assert page.inner_text('#call-detail dd[data-field="call_id"]') == call["call_id"]
        assert page.inner_text('#call-detail dd[data-field="cost_usd"]') == f"${call['cost_usd']}"
        assert page.inner_text('#call-detail dd[data-field="session"]') == "a-1"
        assert page.locator("#crumbs").inner_text().split() == ["All", "users", "›", "alice", "›", "a-1", "›",
                                                               call["call_id"]]
        page.click('#crumbs button[data-level="sessions"]')  # and back up to alice's sessions
        page.wait_for_selector("#sessions-view:not([hidden])")
        page.click(f'#calls tr[data-call="{bobs}"]')  # a recent call opens the same way, under its user and session
        expect(page.locator('#call-detail dd[data-field="call_id"]')).to_have_text(bobs)
        assert page.locator("#crumbs").inner_text().split()[3:6] == ["bob", "(globex)", "›"]

        # latency and success by model, time to first token only where a call streamed
        rows = {r.locator("td.model").inner_text(): r.locator("td").all_inner_texts()
                for r in page.locator("#models tbody tr").all()}
        assert set(rows) == {"gpt-4o", "gpt-4o-mini"}
        for model, cells in rows.items():
            latency, ttft = models[model]["latency_ms"], models[model]["ttft_ms"] or {"p50": None, "p95": None}
            assert cells[1] == str(models[model]["calls"]) and cells[-1] == f"${models[model]['cost_usd']}"
            assert cells[4:8] == [ms(latency["p50"]), ms(latency["p95"]), ms(ttft["p50"]), ms(ttft["p95"])]
        assert rows["gpt-4o"][6] == "—" and rows["gpt-4o-mini"][6] != "—"

        # month to date with its projection, and the credits
        assert page.inner_text('#forecast dd[data-field="mtd"]') == f"${forecast['month_to_date_usd']}"
        assert page.inner_text('#forecast dd[data-field="projected"]') == (
            f"${forecast['projected_usd']}" if forecast["enough_data"] else "not enough data yet")
        assert f"${credits['remaining_usd']} left" in page.inner_text('#credits li[data-account="acme"]')

        # the range picker: days from the calendars go out as start/end on every report, presets as theirs
        assert page.evaluate("""() => [rangeDays({month: "2024-02"}), previousRange({start: "2024-03-01",
            end: "2024-03-03"}), previousRange({month: "2024-02"}), previousRange({hours: 24}), dailyRange({hours: 30})]
        """) == [["2024-02-01", "2024-02-29"], {"start": "2024-02-27", "end": "2024-02-29"},
                 {"start": "2024-01-03", "end": "2024-01-31"}, {"hours": 24, "offset_hours": 24}, {"days": 2}]
        day = (datetime.now(timezone.utc) - timedelta(days=3)).date().isoformat()
        with page.expect_request(lambda r: "/api/usage/users?" in r.url and "end=" + day in r.url) as users_request, \
                page.expect_request(lambda r: "/api/summary?" in r.url and "end=" + day in r.url):
            page.fill("#range-start", day)
            page.fill("#range-end", day)
        assert {k: v for k, v in query_of(users_request.value).items() if k in ("start", "end", "hours")} == {
            "start": day, "end": day}
        expect(page.locator("#users-card > .empty")).to_be_visible()  # no calls that day
        expect(page.locator("#models tbody tr")).to_have_count(0)  # nor in the models table
        this_month = datetime.now(timezone.utc).strftime("%Y-%m")
        with page.expect_request(lambda r: "/api/usage/users?" in r.url and "month=" in r.url) as users_request:
            page.click(".ranges button[data-month='0']")
        assert query_of(users_request.value)["month"] == this_month
        page.wait_for_selector('#users button[data-user="bob"]')
        assert page.input_value("#range-start") == f"{this_month}-01"
        month_models = read(stack, "/api/summary", month=this_month)["by_model"]  # the month, beyond 48 h of latency
        expect(page.locator("#models-card .note")).to_contain_text("48 h")
        rows = {r.locator("td.model").inner_text(): r.locator("td").all_inner_texts()
                for r in page.locator("#models tbody tr").all()}
        assert {model: (cells[1], cells[-1]) for model, cells in rows.items()} == {
            model: (str(row["calls"]), f"${row['cost_usd']}") for model, row in month_models.items()}
        assert all(cells[4:8] == ["—"] * 4 for cells in rows.values())

        # the team filter, from the teams that spent
        page.wait_for_selector("#filter-team option[value='search']", state="attached")
        before = page.get_attribute("body", "data-refreshes")
        with page.expect_request(lambda r: "/api/usage/users?" in r.url and "team=search" in r.url):
            page.select_option("#filter-team", "search")
        page.wait_for_selector(f'body:not([data-refreshes="{before}"])')
        assert users_shown(page) == ["alice"]
        assert page.locator(".card > .error:not([hidden])").count() == 0 and page.locator("#banner").is_hidden()
        assert errors == []

        # an account-scoped key: only its account, in every card, and the same way down to a call
        scoped = stack.admin("POST", "/admin/dashboard-keys", json={"account": "acme"}).json()["key"]
        page, errors = sign_in(browser, stack, scoped)
        page.wait_for_selector('#users button[data-user="alice"]')
        assert users_shown(page) == ["alice"] and page.locator("#filter-account").is_hidden()
        assert page.locator(".card > .error:not([hidden])").count() == 0 and page.locator("#banner").is_hidden()
        assert [li.get_attribute("data-account") for li in page.locator("#credits li").all()] == ["acme"]
        assert set(page.locator("#calls tbody td:nth-child(4)").all_inner_texts()) == {"acme"}
        assert page.inner_text('#forecast dd[data-field="mtd"]') == \
            f"${read(stack, '/api/forecast', key=scoped)['month_to_date_usd']}"
        page.click('#users button[data-user="alice"]')
        page.click('#sessions button[data-session="a-2"]')
        page.locator("#session-calls tbody button").first.click()
        page.wait_for_selector("#call-view:not([hidden])")
        assert page.inner_text('#call-detail dd[data-field="account"]') == "acme"
        assert errors == []
        browser.close()
