"""No 5xx from any input to the admin and JSON APIs (CONTRACT §3-4): the inputs that once gave a 500 as seeds, each
a 400 that names its field, then hypothesis over every route with odd values where names, numbers and dates go."""
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ADMIN_KEY

BUDGET = {"scope": "account", "scope_id": "acme", "period": "daily", "limit_usd": "1"}
SURROGATE, CONTROL = "bad\ud800name", "bad\x00name\n"

# (method, path, body, the field the 400 names)
SEEDS = [
    ("put", "/admin/budgets/b1", BUDGET | {"limit_usd": True}, "limit_usd"),
    ("put", "/admin/budgets/b1", {**BUDGET, "limit_usd": None, "limit_tokens": True}, None),
    ("put", "/admin/budgets/b1", {k: v for k, v in BUDGET.items() if k != "limit_usd"} | {"limit_tokens": True},
     "limit_tokens"),
    ("put", "/admin/budgets/b1", BUDGET | {"period": "window", "window_minutes": True}, "window_minutes"),
    ("put", "/admin/budgets/b1", BUDGET | {"thresholds": [True]}, "thresholds"),
    ("put", "/admin/budgets/b1", BUDGET | {"scope_id": SURROGATE}, "scope_id"),
    ("put", "/admin/budgets/b1", BUDGET | {"scope_id": CONTROL}, "scope_id"),
    ("post", "/admin/credits/acme", {"amount_usd": True}, "amount_usd"),
    ("post", "/admin/credits/acme", {"amount_usd": "5", "note": SURROGATE}, "note"),
    ("post", "/admin/keys", {"name": SURROGATE, "account": "acme"}, "name"),
    ("post", "/admin/keys", {"name": "k", "account": SURROGATE}, "account"),
    ("post", "/admin/keys", {"name": "k", "account": CONTROL}, "account"),
    ("post", "/admin/keys", {"name": "k", "account": "acme", "team": "t" * 300}, "team"),
    ("post", "/admin/keys", {"name": "k", "account": "acme", "user": ""}, "user"),
    ("post", "/admin/keys", {"name": "k", "account": "acme", "": "empty key"}, None),
    ("post", "/admin/dashboard-keys", {"account": SURROGATE}, "account"),
    ("post", "/admin/dashboard-keys", {"account": CONTROL, "name": SURROGATE}, None),
    ("post", "/admin/jobs/recalculate", {"from": "0001-01-01", "to": "9999-12-31"}, None),
    ("post", "/admin/jobs/reprice", {"start": "0001-01-01", "end": "9999-12-31"}, None),
    ("post", "/admin/alerts/test", {"channel": SURROGATE}, "channel"),
    ("get", "/api/export?start=0001-01-01&end=0001-01-01", None, "start"),
    ("get", "/api/export?start=9999-12-31", None, "start"),
    ("get", "/api/export?month=9999-12", None, "month"),
    ("get", "/api/export?month=0001-01", None, "month"),
    ("get", "/api/forecast?month=9999-12", None, "month"),
    ("get", "/api/forecast?month=0001-01", None, "month"),
    ("get", "/api/summary?start=9999-12-31", None, "start"),
    ("get", "/api/usage/daily?start=0001-01-01&end=0001-01-02", None, "start"),
    ("get", "/api/calls?before=0001-01-01T00:00:00Z", None, "before"),
    ("get", "/api/calls?before=9999-12-31T23:59:59Z", None, "before"),
    ("get", "/api/calls?before=0001-01-01", None, "before"),
    ("get", f"/api/calls?before=0001-01-01T00:00:00.000000Z~call_{'0' * 32}", None, "before"),
    ("get", f"/api/calls?before=9999-12-31T23:59:59.999999Z~call_{'f' * 32}", None, "before"),
]


def send(gateway, method, path, body):
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Dashboard-Key": ADMIN_KEY,
               "Content-Type": "application/json"}
    raw = None if body is None else json.dumps(body)  # lone surrogates go as JSON escapes, as a client sends them
    response = getattr(gateway.client.http, method)(path, headers=headers, body=raw)
    is_json = response.headers.get("Content-Type", "").startswith("application/json")
    return response.status_code, json.loads(response.body or b"null") if is_json else response.body


def test_each_seed_that_once_gave_a_500_is_a_400_naming_its_field(gateway):
    wrong = []
    for method, path, body, field in SEEDS:  # one stack for all: a fresh one per seed costs seconds each
        status, answer = send(gateway, method, path, body)
        if status >= 500 or (field is not None and (status != 400 or f"`{field}`" not in answer["error"]["message"])):
            wrong.append((method, path, body, status, answer))
    assert wrong == []


def test_an_audit_entry_that_cannot_be_stored_never_changes_the_answer(gateway, dynamo_faults, monkeypatch):
    from chalicelib.observability import metrics

    counted = []
    monkeypatch.setattr(metrics, "add_metric", lambda **kwargs: counted.append(kwargs["name"]))
    dynamo_faults.fail("PutItem", 10, code="InternalServerError", status=500, after=1)  # the key is written
    status, made = send(gateway, "post", "/admin/keys", {"name": "k", "account": "acme"})
    assert status == 201 and made["key"]
    assert counted == ["AuditWriteFailed"]
    dynamo_faults.clear()
    status, trail = send(gateway, "get", "/admin/audit", None)
    assert status == 200
    status, stored = send(gateway, "put", "/admin/budgets/b1", BUDGET | {"scope_id": SURROGATE})
    status, trail = send(gateway, "get", "/admin/audit", None)
    [entry] = [e for e in trail["entries"] if e["path"] == "/admin/budgets/b1"]
    assert entry["status"] == 400 and "\ud800" not in json.dumps(entry["details"], ensure_ascii=False)


# --- hypothesis over the routes ----------------------------------------------------------------------------------
ODD_TEXT = st.one_of(st.text(max_size=300), st.sampled_from(["", SURROGATE, CONTROL, "x" * 1000]))
ODD_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True), ODD_TEXT,
                      st.lists(st.booleans(), max_size=3), st.dictionaries(ODD_TEXT, st.booleans(), max_size=2))
ODD_DATE = st.one_of(st.sampled_from(["0001-01-01", "9999-12-31", "0000-00-00", "2026-02-30", "9999-12",
                                      "0001-01", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"]),
                     st.dates().map(str))
BODIES = {
    ("put", "/admin/budgets/fuzz"): ("scope", "scope_id", "account", "period", "window_minutes", "limit_usd",
                                     "limit_tokens", "thresholds", "mode", "channels", "timezone"),
    ("post", "/admin/keys"): ("name", "account", "team", "user"),
    ("post", "/admin/dashboard-keys"): ("name", "account"),
    ("post", "/admin/credits/acme"): ("amount_usd", "note"),
    ("post", "/admin/alerts/test"): ("channel",),
    ("post", "/admin/jobs/recalculate"): ("from", "to"),
}
QUERIES = {"/api/summary": ("start", "end", "month", "hours", "days"), "/api/usage/daily": ("start", "end", "days"),
           "/api/usage/users": ("start", "end", "limit", "user"), "/api/forecast": ("month",),
           "/api/export": ("start", "end", "month", "hours", "format"), "/api/calls": ("before", "limit", "user"),
           "/api/sessions": ("user", "start", "end"), "/api/budgets": (), "/api/alerts": ("state",),
           "/api/usage/timeseries": ("hours", "interval", "start", "end"), "/api/usage/window": ("minutes",)}


@st.composite
def requests(draw):
    if draw(st.booleans()):
        (method, path), fields = draw(st.sampled_from(sorted(BODIES.items())))
        body = {name: draw(ODD_VALUE) for name in draw(st.lists(st.sampled_from(fields), max_size=len(fields)))}
        return method, path, body
    path, fields = draw(st.sampled_from(sorted(QUERIES.items())))
    chosen = draw(st.lists(st.sampled_from(fields), max_size=3, unique=True)) if fields else []
    query = "&".join(f"{name}={draw(ODD_DATE)}" for name in chosen)
    return "get", f"{path}?{query}" if query else path, None


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(request=requests())
def test_no_input_gets_a_5xx(gateway, request):
    method, path, body = request
    status, answer = send(gateway, method, path, body)
    assert status < 500, (method, path, body, answer)
