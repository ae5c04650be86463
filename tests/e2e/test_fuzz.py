"""schemathesis against /openapi.json on the local stack: no 5xx, every error says what is wrong, and every /api
answer is what the document says (tests/api_schema.py)."""
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from chalicelib.reports import openapi
from tests import api_schema
from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import RunningStack

schema = schemathesis.openapi.from_dict(openapi.document())
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Dashboard-Key": ADMIN_KEY}


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory):
    stack = RunningStack({}, tmp_path_factory.mktemp("fuzz") / "data").start()
    yield stack
    stack.stop()


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_clear_messages(case, fuzz_stack):
    response = case.call(base_url=fuzz_stack.url, headers=AUTH, timeout=30)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
    api_schema.check(case.method, case.formatted_path, response.status_code, response.content)
    content_type = (response.headers.get("content-type") or [""])[0]
    if response.status_code >= 400 and content_type.startswith("application/json"):
        body = response.json()
        # ours: {"error": {"message"}}; Chalice's own 405/415: {"Code", "Message"}
        message = (body.get("error") or {}).get("message") or body.get("Message") if isinstance(body, dict) else None
        assert message, (case.method, case.formatted_path, response.text[:300])
