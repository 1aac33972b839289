"""A WebSub hub stand-in on 127.0.0.1 that records every publish ping it receives."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


class HubStub:
    """Answers POSTs with the statuses in `script` (then 204) and records their forms."""

    def __init__(self, script: list[int] | None = None) -> None:
        self.calls: list[dict[str, list[str]]] = []
        self.script = list(script or [])
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                form["user-agent"] = [self.headers.get("User-Agent", "")]
                stub.calls.append(form)
                status = stub.script.pop(0) if stub.script else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def topics(self) -> list[str]:
        return [call["hub.url"][0] for call in self.calls]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
