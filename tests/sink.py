"""A local HTTP sink standing in for Slack and a webhook: records what it is sent; can be told to fail."""
import json
import threading
from http.server import BaseHTTPRequestHandler

from local.mock_upstream import DeepBacklogServer


class Sink:
    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        self.failing: set[str] = set()
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                failing = self.path in sink.failing
                if not failing:
                    with sink.lock:
                        sink.received.append((self.path, body))
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = DeepBacklogServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def at(self, path: str) -> list[dict]:
        with self.lock:
            return [body for got, body in self.received if got == path]

    def stop(self) -> None:
        self.server.shutdown()
