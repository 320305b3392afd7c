"""A real webhook receiver on loopback, for the outbox dispatcher's tests."""

from __future__ import annotations

import base64
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A Standard Webhooks secret shared by the dispatcher under test and the receiver that verifies it.
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"keel-outbox-test-secret-32-bytes").decode()


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    status: int
    received_at: float


@dataclass
class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records every POST.

    `respond(n)` decides the status for the n-th request (0-based), 0 meaning: reset the connection
    without answering; `delay` seconds are slept before answering (a slow receiver).
    """

    respond: Callable[[int], int] = lambda n: 204
    delay: float = 0.0
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/keel"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    n = len(receiver.deliveries)
                    status = receiver.respond(n)
                    receiver.deliveries.append(
                        Delivery(
                            {k.lower(): v for k, v in self.headers.items()}, body, status, time.monotonic()
                        )
                    )
                if receiver.delay:
                    time.sleep(receiver.delay)
                if status == 0:  # SO_LINGER 0: closing sends a TCP RST
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                payload = b"receiver says no" if status >= 400 else b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def snapshot(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)
