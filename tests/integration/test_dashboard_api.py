"""The rest of the JSON API the dashboard needs: export, the OpenAPI document, previous-period summary, CORS."""
import csv
import io
import json
import subprocess
import sys

from tests.conftest import ADMIN_KEY, ROOT
from tests.integration.test_reports import log, roll_up


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
    log(1, 30)
    log(2, 90)
    log(3, 100)
    roll_up()
    now = json.loads(get(gateway, "/api/summary?hours=1").body)
    before = json.loads(get(gateway, "/api/summary?hours=1&offset_hours=1").body)
    assert now["calls"] + before["calls"] == 3 and before["calls"] >= 1


def test_cors_allows_only_the_dashboard_origin():
    probe = ("import tests.conftest, app; "
             "cors = app.app.routes['/api/summary']['GET'].cors; "
             "print(cors.allow_origin, 'X-Dashboard-Key' in cors.get_access_control_headers()"
             "['Access-Control-Allow-Headers'], app.app.routes['/openai/v1/chat/completions']['POST'].cors)")
    with_origin = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                                 env={"PATH": "/usr/bin:/bin", "TOLLGATE_DASHBOARD_ORIGIN": "https://dash.example"})
    assert with_origin.stdout.split() == ["https://dash.example", "True", "None"], with_origin.stderr[-500:]
    without = subprocess.run([sys.executable, "-c", probe.replace("cors.allow_origin", "cors")], cwd=ROOT,
                             capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert without.returncode != 0 or without.stdout.startswith("None")
