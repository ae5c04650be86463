"""Test environment: fake AWS credentials and Tollgate settings, set before anything imports chalicelib."""
import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

ROOT = Path(__file__).resolve().parent.parent
EVENTS = Path(__file__).resolve().parent / "events"
sys.path.insert(0, str(ROOT))

from local.moto_tuning import tune_moto  # noqa: E402  (needs ROOT on the path)

# No wall-clock limit per example: the machine is shared and noisy, and speed is measured in `make bench`.
hypothesis_settings.register_profile("tollgate", deadline=None)
hypothesis_settings.load_profile("tollgate")

tune_moto()

# `make test` hands whole files to 3 workers (--dist loadfile, --no-loadscope-reorder): the slowest start first, so
# that none starts last and holds the run for its whole length (measured with --durations=0, seconds on 2 cores)
SLOWEST_FIRST = ("tests/integration/test_rollup.py",  # ~190
                 "tests/integration/test_alert_rules.py",  # ~145
                 "tests/e2e/test_hard_limits.py",  # ~100
                 "tests/e2e/test_bench.py",  # ~185, one test: its worker also takes the next file
                 "tests/e2e/test_deploy_rehearsal.py",  # ~95
                 "tests/integration/test_reports.py",  # ~90
                 "tests/integration/test_package.py")  # ~40


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable: the rest as collected


ADMIN_KEY = "test-admin-key"
UPSTREAM_KEY = "sk-upstream-test"

os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "TOLLGATE_ADMIN_KEY": ADMIN_KEY,
    "TOLLGATE_SPILL_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/tollgate-dev-spill",
    "TOLLGATE_OPENAI_API_KEY": UPSTREAM_KEY, "TOLLGATE_ANTHROPIC_API_KEY": UPSTREAM_KEY,
    "TOLLGATE_OPENROUTER_API_KEY": UPSTREAM_KEY,
    "TOLLGATE_KEY_CACHE_SECONDS": "5",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
})
for name in ("AWS_PROFILE", "TOLLGATE_AWS_ENDPOINT", "AWS_ENDPOINT_URL"):
    os.environ.pop(name, None)


def load_event(name: str):
    """A recorded provider body or stream under tests/events/ (JSON, or raw SSE text)."""
    path = EVENTS / name
    return json.loads(path.read_text()) if path.suffix == ".json" else path.read_text()


@pytest.fixture
def event():
    return load_event
