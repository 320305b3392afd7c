"""A small OpenAI-compatible LLM for tests: a real HTTP server on loopback, in its own process.

`python -m tests.llm_server` serves it (threaded http.server) and prints `PORT <n>`; `LLMServer` starts
that process and steers it through `/_control/*` on the same port.

It answers `POST /v1/chat/completions` with `stream: true` exactly as the OpenAI API does — chunked
`text/event-stream` of `data: {chat.completion.chunk}` lines, then `data: [DONE]` — including tool calls.
What each request gets is a `Behavior`: queue some with `plan(...)` (one per request, in order), or
change the one used when the queue is empty with `default`:

    llm.plan(Behavior(status=500), Behavior())        # first call fails, the retry succeeds
    llm.default = Behavior(delay=1.0)                 # every call takes a second to start answering
    llm.plan(Behavior(tool_call=("find_patient", {"uhid": "P-000001"})))

The reply text is `Behavior.text`, else derived from the conversation: an echo of the last user message,
or — right after a tool result — "From the clinic records: <the tool's JSON>". Every request is recorded
in `requests` (parsed body, headers with lower-case names) for assertions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ERROR_TYPES = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("invalid_request_error", "Incorrect API key provided."),
    403: ("permission_denied", "Not allowed."),
    404: ("invalid_request_error", "The model does not exist."),
    429: ("rate_limit_exceeded", "Rate limit reached; slow down."),
    500: ("server_error", "The server had an error while processing your request."),
    502: ("server_error", "Bad gateway."),
    503: ("server_error", "The engine is currently overloaded."),
}


class _Server(ThreadingHTTPServer):
    request_queue_size = 512  # a hundred clients connecting at once must not overflow the listen backlog
    daemon_threads = True
    block_on_close = False


@dataclass(frozen=True)
class Behavior:
    """How to answer one request."""

    delay: float = 0.0  # seconds before the response starts
    chunk_delay: float = 0.0  # seconds between streamed chunks
    status: int | None = None  # answer with this HTTP error status instead
    drop_after: int | None = None  # cut the connection after this many text chunks
    garbage_after: int | None = None  # after this many text chunks send a chunk that is not JSON, then end
    hang: bool = False  # accept the request and never answer
    text: str | None = None  # the reply's text (default: derived from the request)
    tool_call: tuple[str, dict[str, Any]] | None = None  # answer with this function call instead of text
    retry_after: str | None = None  # Retry-After header on an error status

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Behavior:
        call = data.get("tool_call")
        return cls(**{**data, "tool_call": (call[0], call[1]) if call else None})


def split_tokens(text: str) -> list[str]:
    """Word-sized pieces, spaces kept, so joined they give the text back exactly."""
    return re.findall(r"\S+\s*|\s+", text)


def default_reply(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return f"From the clinic records: {last.get('content')}"
    user = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    return f"You asked: {user} Here is a streamed answer in several small pieces."


class _Engine:
    """The server itself (runs in the child process)."""

    def __init__(self, port: int = 0) -> None:
        self.default = Behavior()
        self.script: deque[Behavior] = deque()
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests being answered at one time
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {}
                if self.path.startswith("/_control/"):
                    outer._control(self, self.path, body)
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._error(404, "Unknown path.")
                    return
                behavior = outer._next(body, {k.lower(): v for k, v in self.headers.items()})
                with outer.lock:
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    outer._serve(self, body, behavior)
                finally:
                    with outer.lock:
                        outer.in_flight -= 1

            def _error(self, status: int, message: str, retry_after: str | None = None) -> None:
                kind, default_message = ERROR_TYPES.get(status, ("server_error", "Error."))
                payload = json.dumps(
                    {
                        "error": {
                            "message": message or default_message,
                            "type": kind,
                            "param": None,
                            "code": None,
                        }
                    }
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                self.wfile.write(payload)

        self.server = _Server(("127.0.0.1", port), Handler)

    def _control(self, handler: BaseHTTPRequestHandler, path: str, body: Any) -> None:
        with self.lock:
            if path == "/_control/plan":
                self.script.extend(Behavior.from_json(b) for b in body)
                answer: Any = {"queued": len(self.script)}
            elif path == "/_control/default":
                self.default = Behavior.from_json(body)
                answer = {"ok": True}
            else:
                answer = {"requests": self.requests, "max_in_flight": self.max_in_flight}
        payload = json.dumps(answer).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> Behavior:
        with self.lock:
            self.requests.append({"body": body, "headers": headers, "at": time.monotonic()})
            return self.script.popleft() if self.script else self.default

    def _serve(self, handler: BaseHTTPRequestHandler, body: dict[str, Any], b: Behavior) -> None:
        if b.hang:
            self.released.wait(120)
            handler.close_connection = True
            return
        if b.delay:
            time.sleep(b.delay)
        if b.status is not None:
            handler._error(b.status, ERROR_TYPES.get(b.status, ("", ""))[1], b.retry_after)  # type: ignore[attr-defined]
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        model = body.get("model", "test-model")
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"

        def send(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            write(f"data: {json.dumps(chunk)}\n\n")

        def write(text: str) -> None:
            data = text.encode()
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()

        try:
            send({"role": "assistant", "content": ""})
            if b.tool_call is not None:
                name, arguments = b.tool_call
                args = json.dumps(arguments)
                half = len(args) // 2
                call_id = f"call_{uuid.uuid4().hex[:8]}"
                send(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": call_id,
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ]
                    }
                )
                for piece in (args[:half], args[half:]):
                    if b.chunk_delay:
                        time.sleep(b.chunk_delay)
                    send({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                send({}, "tool_calls")
            else:
                for n, token in enumerate(
                    split_tokens(b.text if b.text is not None else default_reply(body))
                ):
                    if b.garbage_after is not None and n >= b.garbage_after:
                        write('data: {"choices": [{"delta": \x00garbled\n\n')
                        break
                    if b.drop_after is not None and n >= b.drop_after:
                        handler.connection.shutdown(socket.SHUT_RDWR)
                        handler.close_connection = True
                        return
                    if b.chunk_delay:
                        time.sleep(b.chunk_delay)
                    send({"content": token})
                send({}, "stop")
            write("data: [DONE]\n\n")
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            handler.close_connection = True


class LLMServer:
    """The test LLM, served by a separate process (as a real provider is: no shared interpreter lock with
    the code under test); this object controls it over loopback HTTP."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self._default = Behavior()
        self._control = httpx.Client(timeout=10)

    def start(self) -> LLMServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.llm_server"],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the test LLM did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        self._control.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _call(self, path: str, body: Any = None) -> Any:
        response = self._control.post(f"http://127.0.0.1:{self.port}/_control/{path}", json=body)
        response.raise_for_status()
        return response.json()

    @property
    def default(self) -> Behavior:
        """What a request gets when nothing is planned."""
        return self._default

    @default.setter
    def default(self, behavior: Behavior) -> None:
        self._call("default", behavior.to_json())
        self._default = behavior

    def plan(self, *behaviors: Behavior) -> None:
        """What the next requests get, one behavior each, in order."""
        self._call("plan", [b.to_json() for b in behaviors])

    def completions(self) -> list[dict[str, Any]]:
        """Every chat-completion request received so far: {body, headers, at}."""
        return list(self._call("state")["requests"])

    @property
    def max_in_flight(self) -> int:
        """The most requests the server was answering at one time."""
        return int(self._call("state")["max_in_flight"])


def main() -> None:
    engine = _Engine()
    print(f"PORT {engine.server.server_address[1]}", flush=True)
    try:
        engine.server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
