"""The dashboard in headless Chromium (Debian's, driven by playwright) on the local stack after SDK calls."""
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import ADMIN_KEY, ROOT, UPSTREAM_KEY
from tests.e2e.conftest import RunningStack

CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = '<img src=x onerror="document.title=1">'
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (make browser)")


@pytest.fixture
def dashboard_stack(fake_upstream, tmp_path):
    env = {"TOLLGATE_OPENAI_BASE_URL": f"{fake_upstream.url}/v1", "TOLLGATE_OPENAI_API_KEY": UPSTREAM_KEY}
    stack = RunningStack(env, tmp_path / "data").start()
    yield stack
    stack.stop()


def summary(stack, **params):
    return httpx.get(f"{stack.url}/api/summary", params={"hours": 24, **params},
                     headers={"X-Dashboard-Key": ADMIN_KEY}).json()


def test_dashboard_shows_filters_acknowledges_and_keeps_text_as_text(dashboard_stack, upstream):
    from playwright.sync_api import sync_playwright

    stack = dashboard_stack
    key = stack.admin("POST", "/admin/keys", json={"name": "ui", "account": "ui"}).json()["key"]
    client = openai.OpenAI(base_url=f"{stack.url}/openai/v1", api_key=key)
    calls = [("gpt-4o", (1000, 200), False)] * 3 + [("gpt-4o-mini", (500, 50), n == 1) for n in range(2)]
    for model, usage, stream in calls + [(HOSTILE, (10, 10), False)]:
        upstream.enqueue(usage={"prompt_tokens": usage[0], "completion_tokens": usage[1]},
                         event_interval_seconds=0.05)
        answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                                stream=stream, extra_headers={"X-Tollgate-Tags": "note=<b>bold</b>"})
        if stream:
            list(answer)
    deadline = time.monotonic() + 15
    while summary(stack)["calls"] < 6 and time.monotonic() < deadline:
        time.sleep(0.2)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    httpx.put(f"{stack.url}/admin/budgets/ui-daily", headers=admin, json={
        "scope": "account", "scope_id": "ui", "period": "daily", "limit_usd": "0.01", "thresholds": [0.5]})
    assert httpx.post(f"{stack.url}/admin/jobs/evaluate", headers=admin, json={}).json()["opened"]
    expected = summary(stack)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
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
        speeds = [t for t in page.locator("#calls tbody td.speed").all_inner_texts() if t != "—"]
        assert len(speeds) == 1 and float(speeds[0]) > 0  # the one streamed call: output tokens per second

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
        costs = page.locator("#calls tbody td:nth-child(7)").all_inner_texts()
        assert costs[0] == max(costs, key=lambda c: float(c.strip("$")) if c != "—" else -1)

        alert = page.locator("#alerts li").first
        assert "Budget ui-daily" in alert.inner_text()
        alert.locator("button[data-action='ack']").click()
        page.wait_for_selector("#alerts li.acknowledged")
        states = httpx.get(f"{stack.url}/api/alerts", headers={"X-Dashboard-Key": ADMIN_KEY}).json()["alerts"]
        assert [a["state"] for a in states if a["rule"] == "budget"] == ["acknowledged"]

        with page.expect_download() as download:
            page.click("#export-csv")
        assert download.value.suggested_filename.endswith(".csv")
        assert errors == []
        (ROOT / "docs").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "docs" / "dashboard.png"), full_page=True)
        browser.close()
