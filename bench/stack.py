"""The local stack as the bench measures it: `make run`'s stack in a process of its own, with the jobs that
are separate functions in AWS (stream pump, schedules) and the local-only snapshots off, the providers
pointed at the bench's mock upstream, and every AWS request the stack's process makes logged with its time.

The log is written by botocore's own `Endpoint.make_request` (every DynamoDB, SSM and SQS request of
boto3 and pynamodb goes through it) as `<CLOCK_MONOTONIC ns> <operation> <table or -> <thread>`. That clock
is the machine's, so the bench compares these times with its own: a request in the log between sending
a call and its first byte is a request the gateway made before that byte.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from local.stack import MOCK_PATHS, MOCK_UPSTREAM_KEY, PROVIDERS, free_port

ROOT = Path(__file__).resolve().parent.parent
BACKGROUND_THREADS = ("snapshots", "scheduler", "stream-pump")  # the stack's own jobs, not a call's


@dataclass(frozen=True)
class AwsRequest:
    at_ns: int
    operation: str
    table: str
    thread: str


@dataclass
class RunningStack:
    process: subprocess.Popen
    api: str
    demo_key: str
    aws: str
    aws_log: Path
    admin_key: str = ""

    def aws_requests(self) -> list[AwsRequest]:
        out = []
        for line in self.aws_log.read_text().splitlines():
            at, operation, table, thread = line.split(" ", 3)
            out.append(AwsRequest(int(at), operation, table, thread))
        return out

    def cpu_seconds(self) -> float:
        """User + system CPU the stack's process has used (uvicorn, the proxy, moto: one process, one GIL)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.send_signal(2)  # SIGINT: the stack finishes in-flight calls and runs its schedule once
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(data_dir: str, upstream_url: str) -> RunningStack:
    port = free_port()
    log, aws_log = Path(data_dir) / "stack.log", Path(data_dir) / "aws-requests.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env.update(TOLLGATE_PORT=str(port), TOLLGATE_DATA_DIR=data_dir, TOLLGATE_PUMP_SECONDS="-1",
               TOLLGATE_SCHEDULE_SECONDS="3600")
    for provider in PROVIDERS:
        env[f"TOLLGATE_{provider.upper()}_BASE_URL"] = upstream_url + MOCK_PATHS[provider]
        env[f"TOLLGATE_{provider.upper()}_API_KEY"] = MOCK_UPSTREAM_KEY
    process = subprocess.Popen([sys.executable, "-m", "bench.stack", str(aws_log)], cwd=ROOT, env=env,
                               stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "ready in" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the stack did not start:\n{log.read_text()}")
        time.sleep(0.1)
    text = log.read_text()
    return RunningStack(process, f"http://127.0.0.1:{port}", re.search(r"Demo key\s+(\S+)", text).group(1),
                        re.search(r"AWS \(moto\)\s+(\S+)", text).group(1), aws_log,
                        re.search(r"Admin key\s+(\S+)", text).group(1))


def log_aws_requests(path: str) -> None:
    import botocore.endpoint

    out = open(path, "a", buffering=1)
    lock = threading.Lock()
    make_request = botocore.endpoint.Endpoint.make_request
    table_name = re.compile(rb'"TableName":\s*"([^"]+)"')

    def logged(self, operation_model, request_dict):
        body = request_dict.get("body") or b""
        found = table_name.search(body if isinstance(body, bytes) else str(body).encode())
        line = (f"{time.monotonic_ns()} {operation_model.name} {found.group(1).decode() if found else '-'} "
                f"{threading.current_thread().name}\n")
        with lock:
            out.write(line)
        return make_request(self, operation_model, request_dict)

    botocore.endpoint.Endpoint.make_request = logged


def main() -> None:
    import local.stack

    log_aws_requests(sys.argv[1])
    # Local persistence only, into a throwaway directory here: a Scan of every table each 10 s, and of
    # thousands of logged calls at the end, otherwise.
    local.stack.SNAPSHOT_SECONDS = 3600.0
    local.stack.Stack.save = lambda self: None
    local.stack.main()


if __name__ == "__main__":
    main()
