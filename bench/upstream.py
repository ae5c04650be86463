"""The provider the bench measures against: the mock upstream in a process of its own, as a real provider is
not in the gateway's process, answering every request with one `Script` that the bench sets between phases
(an instant answer, events spaced like a model's, a 20 MB stream)."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from local.mock_upstream import MockUpstream, Script

ROOT = Path(__file__).resolve().parent.parent


class Upstream:
    """`python -m bench.upstream` as a child process: its URL, and `script(...)` to change its answers."""

    def __init__(self, key: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "bench.upstream", key], cwd=ROOT, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.url = self.process.stdout.readline().strip()
        if not self.url:
            raise SystemExit("the mock upstream did not start")

    def script(self, **fields) -> None:
        """From now on every request gets this Script (no fields: the instant default)."""
        self.process.stdin.write(json.dumps(fields) + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "ok"

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


@dataclass
class _Steady(MockUpstream):
    default: Script = field(default_factory=Script)

    def next_script(self) -> Script:
        return self.default


def main() -> None:
    mock = _Steady(expected_key=sys.argv[1])
    print(mock.start(), flush=True)
    for line in sys.stdin:  # until the bench closes the pipe
        mock.default = Script(**json.loads(line))
        print("ok", flush=True)
    mock.stop()


if __name__ == "__main__":
    main()
