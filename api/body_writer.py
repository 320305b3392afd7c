"""Direct writes to a streaming response, for fan-out: `BodyWriter`, which `api.serving.HttpProtocol`
puts in every request's ASGI scope (`scope["extensions"][BODY_WRITER]`). A leaf module, so that the live
relay can use it without importing the server (which imports the app)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

BODY_WRITER = "keel.body_writer"
"""The ASGI scope extension (`scope["extensions"][BODY_WRITER]`) holding each request's `BodyWriter`."""


class BodyWriter:
    """Writes chunks of a started chunked response (an SSE stream) straight to its connection, in the
    caller's turn, bypassing the ASGI `send` chain: the live relay writes each event to hundreds of
    streams in one pass (api/callmaster/live_relay.py), where a send coroutine per stream through
    Litestar's and uvicorn's wrappers cost ~30 % of the fan-out beyond the socket write (py-spy,
    bench/README.md). The bytes on the wire are those uvicorn's `send` would write."""

    __slots__ = ("_cycle",)

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._cycle = cycle

    @staticmethod
    def chunk(body: bytes) -> bytes:
        """`body` framed as one chunk (framed once for all the streams it goes to)."""
        return b"%x\r\n%b\r\n" % (len(body), body)

    def write(self, chunk: bytes) -> bool:
        """Write a `chunk()`; False, writing nothing, when the caller must use the ASGI send instead: the
        response is not a started chunked one or is over, the client left, or its socket is full (the
        send waits for it to drain: flow control)."""
        cycle = self._cycle
        if (
            not cycle.chunked_encoding
            or cycle.response_complete
            or cycle.disconnected
            or cycle.flow.write_paused
            or cycle.transport.is_closing()
        ):
            return False
        cycle.transport.write(chunk)
        return True

    @property
    def paused(self) -> bool:
        """Whether the connection's buffer is over its high-water mark (the client is not reading fast
        enough): the next ASGI send waits for it to drain."""
        return bool(self._cycle.flow.write_paused)

    def abort(self) -> None:
        """Drop the connection now, with whatever is still buffered for it (a client that stopped reading:
        closing would wait for it to read that first)."""
        self._cycle.transport.abort()
