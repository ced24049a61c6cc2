"""A real HTTP receiver for webhook tests: a threaded `http.server` on 127.0.0.1 that records
every request (headers, body) and answers what the test scripts (a status per request, in
order, then `default`; a delay; headers such as Retry-After)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Script:
    statuses: list[int] = field(default_factory=list)  # answered in order, then `default`
    default: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script = Script()
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    script = receiver.script
                    status = script.statuses.pop(0) if script.statuses else script.default
                if script.delay:
                    time.sleep(script.delay)
                with receiver.arrived:
                    receiver.received.append(
                        Received(self.path, dict(self.headers.items()), body, time.monotonic())
                    )
                    receiver.arrived.notify_all()
                self.send_response(status)
                for name, value in script.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(script.body)))
                self.end_headers()
                self.wfile.write(script.body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(
        self, count: int, timeout: float = 20.0, where: Callable[[Received], bool] | None = None
    ) -> list[Received]:
        """The requests received (those `where` accepts) once there are `count` of them."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                found = [r for r in self.received if where is None or where(r)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(found)} of {count} deliveries arrived in time")
                self.arrived.wait(left)
