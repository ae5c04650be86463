"""Managing Tollgate from the dashboard in headless Chromium: keys, budgets and top-ups through the audited admin API,
for the admin key only; and the alert history readable at 1280 px, the most severe alert first. One stack."""
import time
from decimal import ROUND_UP, Decimal

import httpx
import openai
import pytest

from local.build_dashboard import build
from tests.conftest import ADMIN_KEY, UPSTREAM_KEY
from tests.e2e.conftest import RunningStack
from tests.e2e.test_dashboard import BROWSER_ARGS, CHROMIUM, HOSTILE, read

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (make browser)")
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
# Every admin route the dashboard uses, as (method, path, body).
ADMIN_ROUTES = [("GET", "/admin/keys", None), ("POST", "/admin/keys", {"name": "x", "account": "acme"}),
                ("DELETE", "/admin/keys/{key_id}", None), ("GET", "/admin/budgets", None),
                ("PUT", "/admin/budgets/stolen", {"scope": "global", "period": "daily", "limit_usd": "1"}),
                ("DELETE", "/admin/budgets/acme-ceiling-for-the-engineering-organisation", None),
                ("POST", "/admin/credits/acme", {"amount_usd": "1000"})]


@pytest.fixture(scope="module")
def stack(fake_upstream, tmp_path_factory):
    """This module's own stack (not the session's), for its budgets and alerts."""
    build()
    env = {"TOLLGATE_OPENAI_BASE_URL": f"{fake_upstream.url}/v1", "TOLLGATE_OPENAI_API_KEY": UPSTREAM_KEY}
    running = RunningStack(env, tmp_path_factory.mktemp("manage") / "data").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def spent(stack, fake_upstream):
    """Account acme spends today, and two of its budgets alert: a critical one first (then acknowledged), a
    medium one after it."""
    key = stack.admin("POST", "/admin/keys", json={"name": "app", "account": "acme"}).json()["key"]
    client = openai.OpenAI(base_url=f"{stack.url}/openai/v1", api_key=key)
    for _ in range(2):
        fake_upstream.enqueue(usage={"prompt_tokens": 1000, "completion_tokens": 200})
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    while read(stack, "/api/summary", account="acme")["calls"] < 2:
        time.sleep(0.2)
    critical = "acme-ceiling-for-the-engineering-organisation"  # a long title: the history must still fit
    for budget_id, thresholds in ((critical, [1.0]), ("acme-early-warning", [0.5])):
        assert stack.admin("PUT", f"/admin/budgets/{budget_id}", json={
            "scope": "account", "scope_id": "acme", "period": "daily", "limit_usd": "0.000001",
            "thresholds": thresholds}).status_code == 200
        stack.admin("POST", "/admin/jobs/evaluate", json={})
        time.sleep(1.1)  # the second alert opens a second later
    alerts = [a for a in read(stack, "/api/alerts", state="all")["alerts"] if a["rule"] == "budget"]
    assert sorted(a["severity"] for a in alerts) == ["critical", "medium"], alerts
    critical_alert = next(a for a in alerts if a["severity"] == "critical")
    httpx.post(f"{stack.url}/api/alerts/{critical_alert['alert_id']}/ack", headers={"X-Dashboard-Key": ADMIN_KEY})


def spent_today(stack) -> Decimal:
    """Account acme's spend today, as its daily budgets measure it."""
    budgets = {b["budget_id"]: b for b in read(stack, "/api/budgets")["budgets"]}
    return Decimal(budgets["acme-early-warning"]["spent"])


def open_dashboard(browser, stack, key):
    context = browser.new_context(viewport={"width": 1280, "height": 1000},
                                  permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    errors, dialogs = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.goto(f"{stack.url}/dashboard/")
    page.fill("#key-input", key)
    page.click("#login-form button")
    page.wait_for_selector("body[data-refreshes]")
    return page, errors, dialogs


def fits(page, selector) -> bool:
    """Nothing in the element is cut off or scrolled sideways."""
    return page.eval_on_selector(selector, "e => e.scrollWidth <= e.clientWidth")


def test_alert_history_fits_and_alerts_sort_by_severity_then_time(stack, spent):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page, errors, _ = open_dashboard(browser, stack, ADMIN_KEY)
        page.wait_for_selector("#history tbody tr")

        # at 1280 px the whole history shows: no sideways scroll, "acknowledged" in full, Lasted and By on screen
        assert fits(page, "#history-card") and fits(page, "#history")
        card = page.locator("#history-card").bounding_box()
        for header in ("Lasted", "By"):
            box = page.locator("#history th", has_text=header).bounding_box()
            assert box["x"] >= card["x"] and box["x"] + box["width"] <= card["x"] + card["width"] <= 1280, header
        states = page.locator("#history td.state")
        assert "acknowledged" in states.all_inner_texts()
        assert all(cell.evaluate("e => e.scrollWidth <= e.clientWidth") for cell in states.all())
        assert page.locator("#history td.by").all_inner_texts().count("admin") == 1

        # the most severe first, then the newest (the API lists them newest first, and the critical one is older)
        newest_first = read(stack, "/api/alerts", state="all")["alerts"]
        by_severity = sorted(newest_first, key=lambda alert: SEVERITY_RANK[alert["severity"]])  # stable
        assert [a["alert_id"] for a in by_severity] != [a["alert_id"] for a in newest_first]
        active = [a["severity"] for a in by_severity if a["state"] != "resolved"]
        assert page.locator("#alerts li").evaluate_all("items => items.map(i => i.className.split(' ')[0])") == active
        assert page.locator("#history tbody td:nth-child(3)").all_inner_texts() == [
            a["severity"] for a in sorted(newest_first[:20], key=lambda alert: SEVERITY_RANK[alert["severity"]])]
        assert errors == []
        browser.close()


def test_manage_keys_budgets_and_credits_from_the_dashboard(stack, spent):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page, errors, dialogs = open_dashboard(browser, stack, ADMIN_KEY)
        page.wait_for_selector("body[data-manage]")
        expect(page.locator("#manage")).to_be_visible()
        page.fill("#actor", "Dana")
        page.locator("#actor").dispatch_event("change")

        # a key: its secret shown once, copied, working; gone once dismissed; then revoked
        form = page.locator("#key-form")
        form.locator("[name=name]").fill(HOSTILE)
        form.locator("[name=account]").fill("acme")
        form.locator("[name=team]").fill("search")
        form.locator("button[type=submit]").click()
        page.wait_for_selector("#new-secret:not([hidden])")
        secret = page.inner_text("#new-secret-value")
        assert secret.startswith("tg-") and HOSTILE in page.inner_text("#new-secret-name")
        page.click("#copy-secret")
        expect(page.locator("#copy-secret")).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == secret
        key_id = secret[3:].split("_")[0]
        row = page.locator(f'#keys tr[data-key="{key_id}"]')
        expect(row.locator("td.key-state")).to_have_text("active")
        assert HOSTILE in row.inner_text() and page.locator("#manage img").count() == 0
        client = openai.OpenAI(base_url=f"{stack.url}/openai/v1", api_key=secret, max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        page.click("#forget-secret")
        assert page.locator("#new-secret").is_hidden() and secret not in page.content()
        row.locator("button[data-action=revoke]").click()
        expect(row.locator("td.key-state")).to_contain_text("revoked")
        assert dialogs and "Revoke" in dialogs[-1]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # revocation lands within the key cache's few seconds
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            except openai.AuthenticationError:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the revoked key still works")

        # a budget: created, edited to 90 % of today's spend (amber), deleted; the overview's bars follow
        page.click("#new-budget")
        budget = page.locator("#budget-form")
        budget.locator("[name=budget_id]").fill("acme-watch")
        budget.locator("[name=scope]").select_option("account")
        budget.locator("[name=scope_id]").fill("acme")
        budget.locator("[name=period]").select_option("daily")
        budget.locator("[name=limit]").fill("1000")
        budget.locator("button[type=submit]").click()
        page.wait_for_selector('#admin-budgets tr[data-budget="acme-watch"]')
        expect(page.locator("#budgets li", has_text="acme-watch").locator(".bar span")).to_have_class("")
        limit = (spent_today(stack) / Decimal("0.9")).quantize(Decimal("0.000001"), ROUND_UP)
        page.locator('#admin-budgets tr[data-budget="acme-watch"] button[data-action=edit]').click()
        assert budget.locator("[name=budget_id]").input_value() == "acme-watch"
        budget.locator("[name=limit]").fill(str(limit))
        budget.locator("[name=thresholds]").fill("95")  # not crossed: the server calls it "ok", the bar is amber
        budget.locator("button[type=submit]").click()
        expect(page.locator('#admin-budgets tr[data-budget="acme-watch"] td.limit')).to_have_text(f"${limit.normalize():f}")
        saved = {b["budget_id"]: b for b in stack.admin("GET", "/admin/budgets").json()["budgets"]}["acme-watch"]
        assert (saved["scope"], saved["scope_id"], saved["period"], Decimal(saved["limit_usd"]),
                saved["thresholds"]) == ("account", "acme", "daily", limit, [0.95])
        expect(page.locator("#budgets li", has_text="acme-watch").locator(".bar span")).to_have_class("warning")
        assert page.locator("#budgets li", has_text="acme-early-warning").locator(".bar span").get_attribute(
            "class") == "exceeded"
        page.locator('#admin-budgets tr[data-budget="acme-watch"] button[data-action=delete]').click()
        expect(page.locator('#admin-budgets tr[data-budget="acme-watch"]')).to_have_count(0)
        assert "acme-watch" not in str(stack.admin("GET", "/admin/budgets").json())

        # a top-up that today's spend uses 85 % of: amber
        amount = (spent_today(stack) / Decimal("0.85")).quantize(Decimal("0.000001"))
        topup = page.locator("#topup-form")
        topup.locator("[name=account]").fill("acme")
        topup.locator("[name=amount_usd]").fill(str(amount))
        topup.locator("[name=note]").fill("<b>PO 42</b>")
        topup.locator("button[type=submit]").click()
        expect(page.locator("#topup-result")).to_contain_text("left")
        expect(page.locator('#credits li[data-account="acme"] .bar span')).to_have_class("warning")
        credit = read(stack, "/api/credits", account="acme")["credits"][0]
        assert Decimal(credit["allocated_usd"]) == amount and credit["transactions"][0]["note"] == "<b>PO 42</b>"

        # each action is in the audit trail, by the admin, acting as Dana
        trail = stack.admin("GET", "/admin/audit").json()["entries"]
        done = {(e["method"], e["path"]): e for e in trail if e["actor"] == "Dana (dashboard)"}
        for action in [("POST", "/admin/keys"), ("DELETE", f"/admin/keys/{key_id}"),
                       ("PUT", "/admin/budgets/acme-watch"), ("DELETE", "/admin/budgets/acme-watch"),
                       ("POST", "/admin/credits/acme")]:
            assert action in done and done[action]["principal"] == "admin" and done[action]["status"] < 300, action
        assert page.title() == "Tollgate" and page.locator("body b, #manage img").count() == 0
        assert page.locator(".card > .error:not([hidden])").count() == 0 and errors == []
        browser.close()


def test_a_dashboard_key_sees_no_management_and_the_admin_api_refuses_it(stack, spent):
    from playwright.sync_api import sync_playwright

    reader = stack.admin("POST", "/admin/dashboard-keys", json={}).json()["key"]
    key_id = stack.admin("GET", "/admin/keys").json()["keys"][0]["key_id"]
    before = (stack.admin("GET", "/admin/keys").json(), stack.admin("GET", "/admin/budgets").json())
    for method, path, body in ADMIN_ROUTES:
        url = stack.url + path.format(key_id=key_id)
        for headers in ({"Authorization": f"Bearer {reader}"}, {"X-Dashboard-Key": reader}):
            answer = httpx.request(method, url, headers=headers, json=body)
            assert answer.status_code in (401, 403), (method, path, headers, answer.text)
    assert (stack.admin("GET", "/admin/keys").json(), stack.admin("GET", "/admin/budgets").json()) == before
    refused = [e for e in stack.admin("GET", "/admin/audit", params={"limit": 50}).json()["entries"]
               if e["principal"] == "refused"]
    assert len(refused) >= 2 * len(ADMIN_ROUTES)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page, errors, _ = open_dashboard(browser, stack, reader)
        page.wait_for_selector("body[data-manage]")
        assert page.get_attribute("body", "data-manage") == "no"
        assert page.locator("#manage").is_hidden() and page.locator("#key-form, #budget-form, #topup-form").count() == 3
        assert not any(page.locator(form).is_visible() for form in ("#key-form", "#budget-form", "#topup-form"))
        assert page.locator("#history tbody tr").count() > 0  # the rest of the page reads as before
        assert errors == []
        browser.close()
