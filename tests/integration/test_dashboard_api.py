"""The rest of the JSON API the dashboard needs: export, the OpenAPI document, previous-period summary, CORS."""
import csv
import io
import json
import subprocess
import sys

from tests.conftest import ADMIN_KEY, ROOT
from tests.integration.helpers import log, roll_up


def get(gateway, path, key=ADMIN_KEY):
    return gateway.client.http.get(path, headers={"X-Dashboard-Key": key})


def test_export_as_csv_and_json_scoped_and_filtered(gateway, upstream):
    log(1, 5, model="=cmd|' /C calc'!A0")  # a formula in a spreadsheet if left bare
    log(2, 10, account="globex")
    log(3, 60 * 30)  # older than the default 24 h
    response = get(gateway, "/api/export?format=csv&hours=24")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    assert response.headers["Content-Disposition"].startswith('attachment; filename="tollgate-calls-')
    rows = list(csv.DictReader(io.StringIO(response.body.decode())))
    assert sorted(r["call_id"] for r in rows) == ["call_000001", "call_000002"]
    assert {r["model"] for r in rows} == {"'=cmd|' /C calc'!A0", "gpt-4o"}
    _, dashboard = gateway.admin("post", "/admin/dashboard-keys", {"account": "globex"})
    scoped = json.loads(get(gateway, "/api/export?format=json", key=dashboard["key"]).body)
    assert [c["call_id"] for c in scoped["calls"]] == ["call_000002"]
    assert len(json.loads(get(gateway, "/api/export?format=json&hours=48").body)["calls"]) == 3
    assert get(gateway, "/api/export?format=xml").status_code == 400
    assert get(gateway, "/api/export", key="").status_code == 401


def test_openapi_document_lists_every_admin_and_api_route(gateway, upstream):
    from app import app

    response = gateway.client.http.get("/openapi.json")
    document = json.loads(response.body)
    assert response.status_code == 200 and document["openapi"].startswith("3.")
    routes = {(path, method.lower()) for path, methods in app.routes.items() for method in methods
              if path.startswith(("/admin", "/api", "/health"))}
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert routes == documented


def test_summary_of_the_previous_period(gateway, upstream):
    """Calls 30, 90 and 100 minutes ago are far from the hour boundary, 5-minute slots and all: the split is exact."""
    log(1, 30)
    log(2, 90)
    log(3, 100)
    roll_up()
    now = json.loads(get(gateway, "/api/summary?hours=1").body)
    before = json.loads(get(gateway, "/api/summary?hours=1&offset_hours=1").body)
    assert (now["calls"], before["calls"]) == (1, 2)


def test_cors_allows_only_the_dashboard_origin():
    """In a fresh interpreter, as `app` reads the origin at import: with one, only it; without, no CORS at all."""
    probe = ("import tests.conftest, app; "
             "cors = app.app.routes['/api/summary']['GET'].cors; "
             "print(cors and cors.allow_origin, cors and 'X-Dashboard-Key' in cors.get_access_control_headers()"
             "['Access-Control-Allow-Headers'], '/openai/v1/chat/completions' in app.app.routes)")

    def run(expected, **env):
        done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin", **env})
        assert (done.returncode, done.stdout.split()) == (0, expected), done.stderr[-500:]

    run(["https://dash.example", "True", "False"], TOLLGATE_DASHBOARD_ORIGIN="https://dash.example")
    run(["None", "None", "False"])


API_GETS = ["/api/summary", "/api/usage/daily", "/api/usage/timeseries", "/api/usage/window", "/api/calls",
            "/api/budgets", "/api/alerts", "/api/credits", "/api/export", "/api/usage/users", "/api/usage/models",
            "/api/forecast"]
ELSEWHERE = {"/api/calls/{call_id}": "tests/integration/test_proxy.py", "/api/sessions": "test_who_spent.py",
             "/api/sessions/{session}": "test_who_spent.py", "/api/exports/{export_id}": "test_exports.py",
             # every account's traffic to a provider: an account-scoped key gets a 403 there, not its own slice
             "/api/providers": "test_provider_failover.py"}
BAD_PARAMS = {"/api/summary": "hours=-1", "/api/usage/daily": "days=0", "/api/usage/timeseries": "interval=2h",
              "/api/usage/window": "minutes=99999", "/api/calls": "limit=0", "/api/alerts": "state=closed",
              "/api/export": "format=pdf", "/api/usage/users": "limit=0", "/api/usage/models": "hours=99",
              "/api/forecast": "month=2026-13", "/api/sessions": "start=2026-13-01&user=alice"}


def test_every_api_route_is_covered_here():
    from app import app

    gets = {path for path, methods in app.routes.items() if path.startswith("/api/") and "GET" in methods}
    assert gets == set(API_GETS) | set(ELSEWHERE)


def test_every_api_endpoint_needs_a_key_and_scopes_to_the_keys_account(gateway, upstream):
    gateway_key = gateway.new_key(account="acme")
    _, scoped = gateway.admin("post", "/admin/dashboard-keys", {"account": "acme"})
    for path in API_GETS:
        assert get(gateway, path, key="").status_code == 401, path
        assert get(gateway, path, key=gateway_key).status_code == 401, path
        assert get(gateway, path, key=scoped["key"]).status_code == 200, path
        if path not in ("/api/budgets", "/api/alerts"):  # these filter to the key's account, no `account` param
            other = get(gateway, f"{path}?account=globex", key=scoped["key"])
            assert other.status_code == 403 and "acme" in json.loads(other.body)["error"]["message"], path
    ack = gateway.client.http.post("/api/alerts/al_nope/ack", headers={"X-Dashboard-Key": ""})
    assert ack.status_code == 401


def test_bad_parameters_get_a_clear_400_everywhere(gateway, upstream):
    for path, query in BAD_PARAMS.items():
        response = get(gateway, f"{path}?{query}")
        message = json.loads(response.body)["error"]["message"]
        assert response.status_code == 400 and query.split("=")[0] in message, (path, message)
