"""`make run`: the whole of Tollgate on this machine, over real HTTP, with moto standing in for AWS.

One process: moto server (DynamoDB, SQS) → tables and spill queue → the mock upstream for every
provider without a real base URL → uvicorn on TOLLGATE_PORT serving the streaming proxy app, the
Chalice routes and the dashboard (local.server) → a scheduler thread (spill replay, snapshots). State is snapshotted to TOLLGATE_DATA_DIR.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import jinja2

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = ("openai", "anthropic", "openrouter", "groq", "gemini", "bedrock", "azure")  # the built-in ones
MOCK_PATHS = {"openai": "/v1", "anthropic": "", "openrouter": "/openrouter/v1", "groq": "/groq/openai/v1",
              "gemini": "/gemini", "bedrock": "/bedrock", "azure": "/azure"}
DEFAULT_ADMIN_KEY = "tollgate-local-admin"
MOCK_UPSTREAM_KEY = "mock-upstream-key"
MOCK_PACE_MS = "20-50"  # the built-in mock streams as a model generates: one event every 20 to 50 ms


def mock_pace(env: dict[str, str]) -> tuple[float, float]:
    """`TOLLGATE_MOCK_EVENT_MS` as seconds: `20-50` (the default, a pause drawn in that range), `30`, or `0`
    (events at once). Anything else is refused at start, in one line."""
    raw = env.get("TOLLGATE_MOCK_EVENT_MS", MOCK_PACE_MS).strip()
    low, _, high = raw.partition("-")
    try:
        pace = (float(low) / 1000, float(high or low) / 1000)
    except ValueError:
        raise SystemExit(f"TOLLGATE_MOCK_EVENT_MS must be milliseconds, like 30 or 20-50, not {raw!r}") from None
    if not 0 <= pace[0] <= pace[1] <= 10:
        raise SystemExit(f"TOLLGATE_MOCK_EVENT_MS must be 0 to 10000 ms, low before high, not {raw!r}")
    return pace
SNAPSHOT_SECONDS = 10.0
DASHBOARD_DIR = ROOT / "dist" / "dashboard"
MOCK_REQUESTS_KEPT = 100  # what the built-in mock remembers of the requests it served (tests read their own mock)


class RecentRequests(list):
    """The mock upstream's log of requests, keeping only the newest `kept`: a long-running stack would otherwise
    keep every body it ever proxied (about 7 KB a call)."""

    def __init__(self, kept: int = MOCK_REQUESTS_KEPT) -> None:
        super().__init__()
        self.kept = kept

    def append(self, seen) -> None:
        super().append(seen)
        if len(self) > self.kept:
            del self[:len(self) - self.kept]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_secret(admin_key: str) -> tuple[str, str]:
    """A demo gateway key derived from the admin key: the same across restarts, never stored in clear."""
    digest = hmac.new(admin_key.encode(), b"tollgate-demo-key", hashlib.sha256).hexdigest()
    key_id = digest[:12]
    return key_id, f"tg-{key_id}_{digest[12:60]}"


class Stack:
    """Start, run and stop the local stack; tests start the same thing in a subprocess."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ if env is None else env)
        self.port = int(env.get("TOLLGATE_PORT") or 8000)
        self.host = env.get("TOLLGATE_HOST") or "127.0.0.1"
        self.data_dir = Path(env.get("TOLLGATE_DATA_DIR") or ROOT / ".tollgate").resolve()
        self.admin_key = env.get("TOLLGATE_ADMIN_KEY") or DEFAULT_ADMIN_KEY
        self.schedule_seconds = float(env.get("TOLLGATE_SCHEDULE_SECONDS") or 60)
        self.pump_seconds = float(env.get("TOLLGATE_PUMP_SECONDS") or 0.5)  # negative: no pump
        self.env = env
        self.upstreams: dict[str, str] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.scheduler = None  # local/schedule.py, made on the first run (app.py is imported then)

    # -- start ------------------------------------------------------------------------------------
    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        from local.botocore_data import share_botocore_data
        from local.moto_tuning import tune_moto

        share_botocore_data()
        tune_moto()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log

        moto_port = free_port()
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        self.moto.start()
        self._configure_env(f"http://127.0.0.1:{moto_port}")
        self._create_resources()
        self._serve_http()
        self._start_pump()
        self._every(self.schedule_seconds, self.run_schedule, "scheduler")
        self._every(SNAPSHOT_SECONDS, self.save, "snapshots")

    def _configure_env(self, moto_url: str) -> None:
        """Everything chalicelib reads comes from env, set here before chalicelib is imported."""
        os.environ.update({
            "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "TOLLGATE_AWS_ENDPOINT": moto_url, "TOLLGATE_ADMIN_KEY": self.admin_key,
        })
        public_host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        # large exports: a thread of this process writes them (no export function), and this stack serves the files
        os.environ.setdefault("TOLLGATE_EXPORT_DOWNLOAD_URL", f"http://{public_host}:{self.port}/exports")
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        os.environ.pop("AWS_PROFILE", None)
        mock_needed = [p for p in PROVIDERS if not self.env.get(f"TOLLGATE_{p.upper()}_BASE_URL")]
        if mock_needed:
            from local.mock_upstream import MockUpstream

            self.mock = MockUpstream(expected_key=MOCK_UPSTREAM_KEY, pace_seconds=mock_pace(self.env),
                                     requests=RecentRequests(), credit_reads=RecentRequests())
            mock_url = self.mock.start(self.host)
            for provider in mock_needed:
                os.environ[f"TOLLGATE_{provider.upper()}_BASE_URL"] = mock_url + MOCK_PATHS[provider]
                os.environ[f"TOLLGATE_{provider.upper()}_API_KEY"] = MOCK_UPSTREAM_KEY
        self.upstreams = {p: os.environ[f"TOLLGATE_{p.upper()}_BASE_URL"] for p in PROVIDERS}
        self.mocked = set(mock_needed)

    def _create_resources(self) -> None:
        import boto3

        from chalicelib.ledger.models import ApiKey
        from chalicelib.settings import get_settings
        from local import persist
        from local.tables import ALL_MODELS, create_tables

        create_tables()
        self.dynamodb = boto3.client("dynamodb", endpoint_url=os.environ["TOLLGATE_AWS_ENDPOINT"])
        self.tables = [model.Meta.table_name for model in ALL_MODELS]
        restored = persist.restore(self.dynamodb, self.tables, self.data_dir)
        sqs = boto3.client("sqs", endpoint_url=os.environ["TOLLGATE_AWS_ENDPOINT"])
        queue_url = sqs.create_queue(QueueName=get_settings().spill_queue_name,
                                     Attributes={"RedrivePolicy": self._dead_letter_policy(sqs)})["QueueUrl"]
        os.environ["TOLLGATE_SPILL_QUEUE_URL"] = queue_url
        self.rollup_dead_letter_url = sqs.create_queue(
            QueueName=f"tollgate-{get_settings().stage}-rollup-dlq")["QueueUrl"]
        os.environ["TOLLGATE_ROLLUP_DLQ_URL"] = self.rollup_dead_letter_url  # /health and the alert watch both
        os.environ["TOLLGATE_SPILL_DLQ_URL"] = sqs.get_queue_url(
            QueueName=f"{get_settings().spill_queue_name}-dlq")["QueueUrl"]
        boto3.client("s3", endpoint_url=os.environ["TOLLGATE_AWS_ENDPOINT"]).create_bucket(
            Bucket=get_settings().archive_bucket)
        if not os.environ.get("TOLLGATE_SNS_TOPIC_ARN"):  # alerts also go to SNS, as in AWS (moto keeps them)
            sns = boto3.client("sns", endpoint_url=os.environ["TOLLGATE_AWS_ENDPOINT"])
            os.environ["TOLLGATE_SNS_TOPIC_ARN"] = sns.create_topic(Name="tollgate-dev-alerts")["TopicArn"]
        get_settings.cache_clear()
        from chalicelib.ledger.models import CallRecord

        self.stream_arn = self.dynamodb.describe_table(TableName=CallRecord.Meta.table_name)["Table"][
            "LatestStreamArn"]
        get_settings.cache_clear()
        key_id, self.demo_key = demo_secret(self.admin_key)
        from chalicelib.ledger.auth import hash_secret

        ApiKey(key_id, kind="gateway", key_hash=hash_secret(self.demo_key), name="demo", account="demo",
               created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())).save()
        self.restored = restored

    @staticmethod
    def _dead_letter_policy(sqs) -> str:
        """The spill queue's dead-letter queue, as in AWS (infra/resources.json): the replay moves a record
        it cannot write there itself, with the reason; SQS moves what was received 10 times."""
        from chalicelib.settings import get_settings

        url = sqs.create_queue(QueueName=f"{get_settings().spill_queue_name}-dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "10"})

    def _serve_http(self) -> None:
        from app import app
        from local.server import Server, build_app

        self.http = Server(build_app(app, DASHBOARD_DIR), self.host, self.port)
        self.http.start()

    def _start_pump(self) -> None:
        import boto3

        import app as app_module
        from local.pump import StreamPump, sqs_dead_letter

        streams = boto3.client("dynamodbstreams", endpoint_url=os.environ["TOLLGATE_AWS_ENDPOINT"])
        sqs = boto3.client("sqs", endpoint_url=os.environ["TOLLGATE_AWS_ENDPOINT"])
        self.pump = StreamPump(streams, self.stream_arn, app_module.rollup_calls,
                               self.data_dir / "stream-checkpoints.json",
                               dead_letter=sqs_dead_letter(sqs, self.rollup_dead_letter_url))
        self.pump.start_at_latest()
        if self.pump_seconds >= 0:
            self._every(self.pump_seconds, self.pump_once, "stream-pump")

    def pump_once(self) -> int:
        """One pass of the stream pump; then moto forgets the records it applied (moto would keep them all)."""
        from chalicelib.ledger.models import CallRecord
        from local.moto_tuning import trim_stream

        handed = self.pump.run_once()
        for applied in self.pump.checkpoints.values():
            trim_stream(CallRecord.Meta.table_name, int(applied))
        return handed

    def _every(self, seconds: float, job, name: str) -> None:
        def loop() -> None:
            while not self._stop.wait(seconds):
                try:
                    job()
                except Exception as exc:  # a failed run is reported and tried again next time
                    print(f"[{name}] {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

        thread = threading.Thread(target=loop, daemon=True, name=name)
        thread.start()
        self._threads.append(thread)

    # -- jobs -------------------------------------------------------------------------------------
    def run_schedule(self) -> dict[str, str]:
        """What AWS runs on its own: spill replay (an SQS trigger there), then app.py's `@app.schedule` handlers
        that are due (local/schedule.py), so the local stack runs exactly the handlers AWS schedules.

        Each job runs whatever happened to the one before, as separate functions in AWS do; a failure
        is reported and the job runs again next time. Returns each job's outcome ("ok" or the error).
        """
        import app
        from chalicelib import clock
        from local.pump import drain_spill_queue
        from local.schedule import Scheduler

        def replay() -> None:
            replayed = drain_spill_queue()  # replayed calls reach the stream like any other
            if replayed["replayed"]:
                print(f"[scheduler] replayed {replayed['replayed']} spilled call records", flush=True)
            if replayed.get("dead_lettered"):
                print(f"[scheduler] {replayed['dead_lettered']} spilled record(s) could not be written: moved to "
                      "the spill dead-letter queue with the reason", file=sys.stderr, flush=True)

        outcomes = {}
        try:
            replay()
            outcomes["spill replay"] = "ok"
        except Exception as exc:  # reported here, retried next run; the scheduled handlers still run
            outcomes["spill replay"] = f"{type(exc).__name__}: {exc}"
        now = clock.now()
        self.scheduler = self.scheduler or Scheduler(app, now)
        for name, result in self.scheduler.run(now).items():
            outcomes[name] = f"{type(result).__name__}: {result}" if isinstance(result, Exception) else "ok"
            if isinstance(result, dict) and any(result.get(k) for k in ("opened", "escalated", "resolved")):
                print("[scheduler] alerts: " + ", ".join(f"{len(result[k])} {k}" for k in ("opened", "escalated",
                      "resolved") if result.get(k)), flush=True)
        for name, outcome in outcomes.items():
            if outcome != "ok":
                print(f"[scheduler] {name} failed: {outcome}", file=sys.stderr, flush=True)
        return outcomes

    def save(self) -> None:
        from local import heap, persist

        persist.snapshot(self.dynamodb, self.tables, self.data_dir)
        heap.release_free_memory()  # what the scan, and every request since, freed (local/heap.py)

    # -- stop -------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop taking calls and finish those in flight, then fold, evaluate and snapshot what they logged."""
        self._stop.set()
        took, started = {}, time.monotonic()

        def lap(name: str) -> None:
            nonlocal started
            took[name], started = time.monotonic() - started, time.monotonic()

        try:
            self.http.stop()
            lap("HTTP")
            try:
                self.run_schedule()
                lap("jobs")
            finally:
                if self.pump_seconds >= 0:
                    self.pump.drain()
                    lap("stream pump")
                self.save()
                lap("snapshot")
                print(f"  stopped in {sum(took.values()):.1f}s (" + ", ".join(f"{name} {seconds:.1f}s" for name, seconds
                                                                     in took.items()) + ")", flush=True)
        finally:
            if getattr(self, "mock", None):
                self.mock.stop()
            self.moto.stop()

    def served_by(self) -> dict[str, list[str]]:
        """Which providers the built-in mock answers, and which go upstream (and where): the built-ins, then those of
        the providers file (TOLLGATE_PROVIDERS_FILE), each reached at its own base URL."""
        from chalicelib import provider_registry
        from chalicelib.settings import get_settings

        settings = get_settings()
        upstream = [f"{name} → {settings.base_url(name)}" + ("" if entry.built_in else " (providers file)")
                    for name, entry in provider_registry.providers().items() if name not in self.mocked]
        return {"mock": sorted(self.mocked, key=PROVIDERS.index), "upstream": upstream}

    def banner(self) -> str:
        template = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")), autoescape=False)
        return template.get_template("local_banner.txt.j2").render(
            api_url=f"http://{self.host}:{self.port}", data_dir=self.data_dir,
            aws_endpoint=os.environ["TOLLGATE_AWS_ENDPOINT"], served=self.served_by(),
            admin_key=self.admin_key, demo_key=self.demo_key,
            dashboard=(ROOT / "dist" / "dashboard" / "index.html").exists())


def main() -> None:
    sys.path.insert(0, str(ROOT))
    started = time.monotonic()
    stack = Stack()
    stack.start()
    from local import memory_probe

    memory_probe.install(os.environ, stack.data_dir)  # traces what grows from here on, with TOLLGATE_TRACEMALLOC
    print(stack.banner(), flush=True)
    print(f"  ready in {time.monotonic() - started:.1f}s ({stack.restored} items restored)", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    print("\n  stopping: saving state…", flush=True)
    stack.stop()
    # The state is saved. A request the HTTP server gave up on may still run in an AnyIO worker thread, which
    # is not a daemon: the interpreter would wait for it at exit (71 s after an API fuzz). Nothing it does now
    # is kept, so the process ends here.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
