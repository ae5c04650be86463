"""`make smoke`: prove a deployed stage (or any running Tollgate) works end to end, one line per check.

    make smoke STAGE=dev                        # the stack tollgate-dev's URLs; admin key from SSM
    make smoke BASE_URL=http://127.0.0.1:8000   # a running stack; admin key TOLLGATE_ADMIN_KEY (local default)

The checks, in order: `GET /health` on the API URL; the dashboard's origin (its page, `/api/summary`
with the admin key, and `GET /admin/budgets` for the Manage section: CloudFront routes `/api/*` and
`/admin/*` to the API, and `/health` is outside them, so these are the cheapest routes that prove the
routing and the forwarded `Authorization` header); a temporary gateway key (account `smoke`); one
call and one stream through the proxy with the official OpenAI SDK; the same stream read raw for its
`: tollgate` trailer; that call by id; the key's calls in `/api/summary` (filtered by the new key, so
earlier runs never count); the key revoked and then refused with a 401. The key is revoked even when
a check in between failed. A check that needs a failed one is printed as `skip`.

Settings (env): SMOKE_MODEL (gpt-4o-mini), SMOKE_ROLLUP_SECONDS (60), SMOKE_REVOKE_SECONDS (30),
TOLLGATE_ADMIN_KEY (overrides SSM). Exit 0 when every check passed, 1 when one failed, 2 on bad input.
No secret is ever printed: keys are shown by key_id only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx

LOCAL_ADMIN_KEY = "tollgate-local-admin"
ACCOUNT = "smoke"
HTTP_SECONDS = 20  # every JSON API / admin request
MODEL_SECONDS = 90  # a call through the proxy to a real model
CALL_BY_ID_SECONDS = 10  # a call record spilled to SQS reaches the table a little later
PROMPT = [{"role": "user", "content": "Reply with the single word: ok"}]
TRAILER = ": tollgate "
NAME_WIDTH = 22
# API Gateway's answer when its resource policy (admin_source_cidrs) refuses a request: through CloudFront
# /admin comes from CloudFront's addresses, outside the admin networks
RESOURCE_POLICY_REFUSAL = "not authorized to perform: execute-api:Invoke"


class InputError(Exception):
    """A missing or wrong input: printed as one line, exit 2."""


class Failed(Exception):
    """A check that did not pass: its message is the reason printed."""


@dataclass
class Target:
    api: str  # base URL of the API and proxy, no trailing slash
    dashboard: str  # the dashboard's origin
    dashboard_page: str  # where the dashboard is on that origin
    admin_key: str


# ---- inputs ----------------------------------------------------------------------------------------------

def resolve(base_url: str | None, stage: str | None, environ=os.environ) -> Target:
    """BASE_URL (a running stack, the dashboard on the same origin) wins over STAGE (a deployed stack)."""
    admin_key = environ.get("TOLLGATE_ADMIN_KEY")
    if base_url:
        base = _url(base_url, "BASE_URL")
        return Target(base, base, "/dashboard/", admin_key or LOCAL_ADMIN_KEY)
    if not stage:
        raise InputError("name the stage or the URL: make smoke STAGE=dev, "
                         "or make smoke BASE_URL=http://127.0.0.1:8000")
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from infra.preflight import ADMIN_KEY, region_of

    session = boto3.Session()
    region = region_of(session, environ)
    if not region:
        raise InputError("no AWS region: export AWS_REGION=<the stage's region> (or use BASE_URL)")
    config = Config(region_name=region, connect_timeout=5, read_timeout=15, retries={"max_attempts": 3})
    stack = f"tollgate-{stage}"
    try:
        try:
            [found] = session.client("cloudformation", config=config).describe_stacks(StackName=stack)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                raise InputError(f"stack {stack} does not exist in {region}: make deploy STAGE={stage} first "
                                 "(or set AWS_REGION to the stage's region)") from None
            raise
        outputs = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
        missing = [name for name in ("EndpointURL", "DashboardURL") if not outputs.get(name)]
        if missing:
            raise InputError(f"stack {stack} ({found['StackStatus']}) has no {' or '.join(missing)} output: "
                             f"make deploy STAGE={stage}")
        if not admin_key:
            name = ADMIN_KEY.format(stage=stage)
            try:
                admin_key = session.client("ssm", config=config).get_parameter(
                    Name=name, WithDecryption=True)["Parameter"]["Value"]
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ParameterNotFound":
                    raise InputError(f"SSM parameter {name} is missing in {region}: set it (README, Deploy to "
                                     "AWS) or pass TOLLGATE_ADMIN_KEY") from None
                raise
    except NoCredentialsError:
        raise InputError("no AWS credentials: configure them (aws sts get-caller-identity must work), "
                         "or use BASE_URL") from None
    except ClientError as exc:
        error = exc.response["Error"]
        raise InputError(f"AWS refused {exc.operation_name}: {error.get('Code')}: {error.get('Message')}") from None
    except BotoCoreError as exc:
        raise InputError(f"AWS: {exc}") from None
    dashboard = _url(outputs["DashboardURL"], "the DashboardURL output")
    return Target(_url(outputs["EndpointURL"], "the EndpointURL output"), dashboard, "/", admin_key)


def _url(value: str, what: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"{what} is not an http(s) URL: {value!r}")
    return value.strip().rstrip("/")


# ---- running checks --------------------------------------------------------------------------------------

class Smoke:
    """Runs the checks in order against one target; `failures` counts the ones that did not pass."""

    def __init__(self, target: Target, model: str, rollup_seconds: float, revoke_seconds: float,
                 out=sys.stdout):
        self.target, self.model = target, model
        self.rollup_seconds, self.revoke_seconds = rollup_seconds, revoke_seconds
        self.out = out
        self.failures = 0
        self.http = httpx.Client(timeout=HTTP_SECONDS, follow_redirects=False)
        self.admin_headers = {"Authorization": f"Bearer {target.admin_key}"}
        self.dashboard_headers = {"X-Dashboard-Key": target.admin_key}

    def line(self, status: str, name: str, text: str) -> None:
        if status == "ok":
            print(f"ok   {name:<{NAME_WIDTH}} {text}", file=self.out, flush=True)
        else:
            print(f"{status:<4} {name}: {text}", file=self.out, flush=True)

    def check(self, name: str, run: Callable[[], tuple[Any, str]], needs: str | None = None) -> Any:
        """Run one check: print `ok` with its detail (the time taken unless it says otherwise), or `FAIL`
        with the reason; `needs` names an earlier result that is missing, and the check is skipped."""
        if needs:
            self.line("skip", name, f"needs {needs}")
            return None
        started = time.monotonic()
        try:
            value, detail = run()
        except Exception as exc:  # a smoke test reports every failure as a line, and goes on
            self.failures += 1
            self.line("FAIL", name, reason(exc))
            return None
        self.line("ok", name, detail or f"{ms(time.monotonic() - started)}")
        return value

    def run(self) -> int:
        self.check("health (API)", self.health)
        self.check("health (dashboard)", self.dashboard)
        key = self.check("gateway key", self.create_key)
        try:
            self.sdk_checks(key)
        finally:
            if key:  # never leave a live key behind, whatever failed in between
                revoked = self.check("key revoked", lambda: self.revoke(key["key_id"]))
                self.check("revoked key refused", lambda: self.refused(key["key"]),
                           needs=None if revoked else "the key revoked")
            else:
                self.line("skip", "key revoked", "needs the gateway key")
                self.line("skip", "revoked key refused", "needs the gateway key")
        self.http.close()
        print(f"{'all checks passed' if not self.failures else f'{self.failures} check(s) failed'} "
              f"({self.target.api})", file=self.out, flush=True)
        return 1 if self.failures else 0

    def sdk_checks(self, key: dict | None) -> None:
        no_key = None if key else "the gateway key"
        client = self.openai(key["key"]) if key else None
        passed = 0
        passed += self.check("call (SDK)", lambda: self.call(client), needs=no_key) is not None
        passed += self.check("stream (SDK)", lambda: self.stream(client), needs=no_key) is not None
        trailer = self.check("trailer", lambda: self.trailer(key["key"]), needs=no_key)
        passed += trailer is not None
        self.check("call by id", lambda: self.call_by_id(trailer), needs=None if trailer else "the trailer")
        self.check("rollup", lambda: self.rollup(key["key_id"], passed),
                   needs=no_key or (None if passed else "a call through the proxy"))

    # ---- the checks: each returns (value for later checks, detail) or raises ----------------------------

    def health(self) -> tuple[Any, str]:
        started = time.monotonic()
        response = self.http.get(f"{self.target.api}/health")
        body = self.body(response, 503 if response.status_code == 503 else 200)  # 503 names what is degraded
        if body.get("status") != "healthy":
            bad = [f"{name}={c.get('status')}" for name, c in body.get("components", {}).items()
                   if c.get("status") != "ok"]
            raise Failed(f"status {body.get('status')!r}: {', '.join(bad) or body}")
        return True, ms(time.monotonic() - started)

    def dashboard(self) -> tuple[Any, str]:
        started = time.monotonic()
        page = self.http.get(self.target.dashboard + self.target.dashboard_page)
        if page.status_code != 200 or "html" not in page.headers.get("content-type", ""):
            raise Failed(f"the dashboard page {page.url} answered {page.status_code} "
                         f"{page.headers.get('content-type', '')}")
        body = self.json("GET", f"{self.target.dashboard}/api/summary", 200, params={"hours": 1},
                         headers=self.dashboard_headers)
        if "calls" not in body:
            raise Failed(f"/api/summary through the dashboard's origin has no `calls`: {clip(body)}")
        admin = self.http.get(f"{self.target.dashboard}/admin/budgets", headers=self.admin_headers)
        if admin.status_code == 403 and RESOURCE_POLICY_REFUSAL in admin.text:
            return True, (f"{ms(time.monotonic() - started)}  (page + /api/summary on {self.target.dashboard}; "
                          "/admin refused there by the stage's admin_source_cidrs, so Manage stays hidden)")
        if "budgets" not in self.body(admin, 200):
            raise Failed(f"/admin/budgets through the dashboard's origin has no `budgets`: {clip(admin.text)}")
        return True, (f"{ms(time.monotonic() - started)}  "
                      f"(page + /api/summary + /admin/budgets on {self.target.dashboard})")

    def create_key(self) -> tuple[Any, str]:
        started, stamp = time.monotonic(), datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        body = self.json("POST", f"{self.target.api}/admin/keys", 201, headers=self.admin_headers,
                         json={"name": f"smoke-{stamp}", "account": ACCOUNT})
        if not str(body.get("key", "")).startswith("tg-") or not body.get("key_id"):
            raise Failed("POST /admin/keys answered 201 without a key and key_id")
        return body, f"{ms(time.monotonic() - started)}  key_id {body['key_id']} (account {ACCOUNT})"

    def openai(self, key: str):
        import openai

        return openai.OpenAI(base_url=f"{self.target.api}/openai/v1", api_key=key, max_retries=0,
                             timeout=MODEL_SECONDS, default_headers={"X-Tollgate-Operation": "smoke"})

    def call(self, client) -> tuple[Any, str]:
        started = time.monotonic()
        raw = client.chat.completions.with_raw_response.create(model=self.model, messages=PROMPT)
        answer = raw.parse()
        took = time.monotonic() - started
        if not answer.choices:
            raise Failed(f"{self.model} answered without choices")
        tokens = answer.usage.total_tokens if answer.usage else "?"
        cost = raw.headers.get("x-tollgate-cost-usd")
        return True, f"{ms(took)}  {answer.model}, {tokens} tokens, {usd(cost)}"

    def stream(self, client) -> tuple[Any, str]:
        started, first, events, text = time.monotonic(), None, 0, []
        with client.chat.completions.create(model=self.model, messages=PROMPT, stream=True) as chunks:
            for chunk in chunks:
                first = first or time.monotonic()
                events += 1
                text += [c.delta.content for c in chunk.choices if c.delta and c.delta.content]
        total = time.monotonic() - started
        if not events:
            raise Failed("the stream ended without an event")
        chars = len("".join(text))
        return True, f"first event {ms(first - started)}, total {ms(total)}  ({events} events, {chars} chars)"

    def trailer(self, key: str) -> tuple[Any, str]:
        """The SDK hides SSE comments, so the same stream is read raw here for its last line."""
        started, last = time.monotonic(), ""
        body = {"model": self.model, "messages": PROMPT, "stream": True}
        headers = {"Authorization": f"Bearer {key}", "X-Tollgate-Operation": "smoke"}
        with self.http.stream("POST", f"{self.target.api}/openai/v1/chat/completions", json=body,
                              headers=headers, timeout=MODEL_SECONDS) as response:
            if response.status_code != 200:
                raise Failed(f"the raw stream answered {response.status_code}: {clip(response.read().decode())}")
            header_id = response.headers.get("x-tollgate-call-id")
            for line in response.iter_lines():
                last = line if line.strip() else last
        if not last.startswith(TRAILER):
            raise Failed(f"the stream's last line is not the `: tollgate` comment: {clip(last)}")
        trailer = json.loads(last[len(TRAILER):])
        if not trailer.get("call_id") or "cost_usd" not in trailer:
            raise Failed(f"the trailer lacks call_id or cost_usd: {clip(last)}")
        if header_id and header_id != trailer["call_id"]:
            raise Failed(f"the trailer's call_id {trailer['call_id']} is not X-Tollgate-Call-Id {header_id}")
        return trailer, f"{ms(time.monotonic() - started)}  {trailer['call_id']}, {usd(trailer['cost_usd'])}"

    def call_by_id(self, trailer: dict) -> tuple[Any, str]:
        started, call_id = time.monotonic(), trailer["call_id"]
        url = f"{self.target.api}/api/calls/{call_id}"
        while (response := self.http.get(url, headers=self.dashboard_headers)).status_code == 404 \
                and time.monotonic() - started < CALL_BY_ID_SECONDS:
            time.sleep(0.5)
        call = self.body(response, 200)
        wrong = [f"{name}={call.get(name)!r}" for name, want in
                 (("call_id", call_id), ("stream", True), ("status", 200), ("account", ACCOUNT),
                  ("cost_usd", trailer["cost_usd"])) if call.get(name) != want]
        if wrong:
            raise Failed(f"the logged call differs from the stream: {', '.join(wrong)}")
        tokens = f"{call['input_tokens']}+{call['output_tokens']} tokens"
        return call, f"{ms(time.monotonic() - started)}  {call['model']}, {tokens}"

    def rollup(self, key_id: str, expected: int) -> tuple[Any, str]:
        """The new key's own calls (no earlier run counts), polled until the stream has rolled them up."""
        started = time.monotonic()
        params = {"hours": 1, "key": key_id}
        while True:
            calls = self.json("GET", f"{self.target.api}/api/summary", 200, params=params,
                              headers=self.dashboard_headers).get("calls", 0)
            waited = time.monotonic() - started
            if calls >= expected:
                return calls, f"{calls} calls of key {key_id} in /api/summary after {waited:.1f} s"
            if waited > self.rollup_seconds:
                raise Failed(f"/api/summary shows {calls} of the key's {expected} calls after "
                             f"{self.rollup_seconds:g} s (SMOKE_ROLLUP_SECONDS)")
            time.sleep(0.5)

    def revoke(self, key_id: str) -> tuple[Any, str]:
        started = time.monotonic()
        self.json("DELETE", f"{self.target.api}/admin/keys/{key_id}", 200, headers=self.admin_headers)
        return True, f"{ms(time.monotonic() - started)}  key_id {key_id}"

    def refused(self, key: str) -> tuple[Any, str]:
        """Revocation is effective within seconds (each container caches a key briefly): poll for the 401 on
        a route that costs nothing upstream."""
        started = time.monotonic()
        while True:
            status = self.http.get(f"{self.target.api}/openai/v1/models",
                                   headers={"Authorization": f"Bearer {key}"}).status_code
            waited = time.monotonic() - started
            if status == 401:
                return True, f"401 after {waited:.1f} s"
            if waited > self.revoke_seconds:
                raise Failed(f"the revoked key still answers {status} after {self.revoke_seconds:g} s "
                             "(SMOKE_REVOKE_SECONDS)")
            time.sleep(1)

    # ---- HTTP helpers --------------------------------------------------------------------------------------

    def json(self, method: str, url: str, status: int, **kwargs) -> dict:
        return self.body(self.http.request(method, url, **kwargs), status)

    @staticmethod
    def body(response: httpx.Response, status: int) -> dict:
        if response.status_code != status:
            raise Failed(f"{response.request.method} {response.url.path} answered {response.status_code}: "
                         f"{clip(response.text)}")
        try:
            return response.json()
        except ValueError:
            raise Failed(f"{response.request.method} {response.url.path} answered non-JSON: "
                         f"{clip(response.text)}") from None


def reason(exc: Exception) -> str:
    """One line naming what went wrong, without any secret (keys travel in headers, never in URLs)."""
    import openai

    if isinstance(exc, Failed):
        return str(exc)
    if isinstance(exc, (httpx.TimeoutException, openai.APITimeoutError)):
        return f"no answer in time ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {exc.request.url.scheme}://{exc.request.url.netloc.decode()}: {exc}"
    if isinstance(exc, openai.APIStatusError):
        return f"{exc.status_code} {clip(exc.message)}"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot connect: {exc.__cause__ or exc}"
    return f"{type(exc).__name__}: {clip(str(exc))}"


def clip(value: Any, limit: int = 200) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "…"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def usd(cost: str | None) -> str:
    return f"${cost}" if cost else "unpriced"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.smoke", description=__doc__.split("\n")[0])
    parser.add_argument("--stage", default=os.environ.get("STAGE"), help="a deployed stage (env STAGE)")
    parser.add_argument("--base-url", default=os.environ.get("BASE_URL"),
                        help="a running Tollgate, e.g. http://127.0.0.1:8000 (env BASE_URL; wins over --stage)")
    args = parser.parse_args(argv)
    try:
        target = resolve(args.base_url, args.stage)
        rollup = seconds_setting("SMOKE_ROLLUP_SECONDS", 60)
        revoke = seconds_setting("SMOKE_REVOKE_SECONDS", 30)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model = os.environ.get("SMOKE_MODEL") or "gpt-4o-mini"
    print(f"smoke test of {target.api} (dashboard {target.dashboard}), model {model}", flush=True)
    return Smoke(target, model, rollup, revoke).run()


def seconds_setting(name: str, default: float) -> float:
    value = os.environ.get(name) or str(default)
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1
    if not 0 <= seconds <= 3600:
        raise InputError(f"{name} must be a number of seconds from 0 to 3600, not {value!r}")
    return seconds


if __name__ == "__main__":
    sys.exit(main())
