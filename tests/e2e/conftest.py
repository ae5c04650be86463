"""The local stack in its own process (`python -m local.stack`), reached over real HTTP like `make run`."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from local.mock_upstream import MockUpstream
from local.stack import free_port
from tests import api_schema
from tests.conftest import ADMIN_KEY, ROOT, UPSTREAM_KEY

READY_SECONDS = 60


class RunningStack:
    def __init__(self, env: dict[str, str], data_dir: Path, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("TOLLGATE_", "AWS_", "POWERTOOLS_"))}
        self.env = {**clean, "TOLLGATE_PORT": str(self.port), "TOLLGATE_DATA_DIR": str(data_dir),
                    "TOLLGATE_ADMIN_KEY": ADMIN_KEY, "TOLLGATE_SCHEDULE_SECONDS": "1",
                    "TOLLGATE_MOCK_EVENT_MS": "0", **env}  # the mock at once, unless a test wants it paced
        self.output = data_dir.parent / f"stack-{self.port}.log"

    def start(self) -> "RunningStack":
        self.log = open(self.output, "w")
        self.process = subprocess.Popen([sys.executable, "-m", "local.stack"], cwd=ROOT, env=self.env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"stack exited:\n{self.output.read_text()}")
            if "ready in" in self.output.read_text():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"stack not ready in {READY_SECONDS}s:\n{self.output.read_text()}")

    def stop(self) -> str:
        """SIGTERM (a process started from a background job ignores SIGINT), then a kill if it hangs."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        return self.output.read_text()

    def banner_value(self, label: str) -> str:
        for line in self.output.read_text().splitlines():
            if line.strip().startswith(label):
                return line.split()[2]
        raise KeyError(label)

    def admin(self, method: str, path: str, **kwargs) -> httpx.Response:
        kwargs.setdefault("timeout", 30)  # a shared machine under a full suite can be slow: not a failure of ours
        return httpx.request(method, self.url + path, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, **kwargs)

    def calls_page(self, **params) -> dict:
        response = httpx.get(self.url + "/api/calls", params=params, headers={"X-Dashboard-Key": ADMIN_KEY},
                             timeout=30)
        response.raise_for_status()
        api_schema.check("GET", "/api/calls", response.status_code, response.content)
        return response.json()

    def calls(self, **params) -> list[dict]:
        return self.calls_page(**params)["calls"]

    def every_call(self) -> list[dict]:
        """Every call logged, page by page: a worker's e2e modules share the stack and may log hundreds."""
        page = self.calls_page(limit=500)
        found = page["calls"]
        while page["next_before"]:
            page = self.calls_page(limit=500, before=page["next_before"])
            found += page["calls"]
        return found


@pytest.fixture(scope="session")
def fake_upstream():
    mock = MockUpstream(expected_key=UPSTREAM_KEY)
    mock.url = mock.start()
    yield mock
    mock.stop()


@pytest.fixture(scope="session")
def stack(fake_upstream, tmp_path_factory):
    env = {"TOLLGATE_OPENAI_BASE_URL": f"{fake_upstream.url}/v1",
           "TOLLGATE_ANTHROPIC_BASE_URL": fake_upstream.url,
           "TOLLGATE_OPENROUTER_BASE_URL": f"{fake_upstream.url}/openrouter/v1",
           "TOLLGATE_BEDROCK_BASE_URL": f"{fake_upstream.url}/bedrock",
           "TOLLGATE_OPENAI_API_KEY": UPSTREAM_KEY, "TOLLGATE_ANTHROPIC_API_KEY": UPSTREAM_KEY,
           "TOLLGATE_OPENROUTER_API_KEY": UPSTREAM_KEY,
           "TOLLGATE_UPSTREAM_READ_SECONDS": "3"}  # tests/e2e/test_streaming.py stalls a stream past it
    running = RunningStack(env, tmp_path_factory.mktemp("stack") / "data").start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def gateway_key(stack):
    response = stack.admin("POST", "/admin/keys", json={"name": "e2e", "account": "e2e", "team": "qa"})
    assert response.status_code == 201, response.text
    return response.json()["key"]


@pytest.fixture
def upstream(fake_upstream):
    fake_upstream.scripts.clear()
    fake_upstream.requests.clear()
    return fake_upstream
