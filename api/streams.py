"""How many Server-Sent-Event streams one caller may hold open in an API process.

A stream holds a connection for as long as the client likes, and its subscriber costs its process on
every event (the assistant's streams each re-read their reply from the database on every wake-up; the
live relay reports every follower in its heartbeat). Without a bound one token could open them until the
process has no connection or file descriptor left. A stream is counted before its status goes out, with
no await between the count and the join, so a burst of opens cannot all pass the count; a caller past
its limit gets 429 with `Retry-After` instead of a stream.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import msgspec
from litestar.response import ServerSentEvent
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send

from api.errors import RETRY_AFTER_SECONDS


class TooManyStreams(Exception):
    """The caller already holds as many streams as it may in this process."""


TOO_MANY_STREAMS = msgspec.json.encode(
    {
        "status": 429,
        "title": "Too Many Requests",
        "detail": "Too many streams are open for this user or share link; close one, or retry later.",
    }
)


async def refuse(send: Send) -> None:
    """Answer 429 (problem document, `Retry-After`) in place of a stream."""
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(TOO_MANY_STREAMS)).encode()),
                (b"retry-after", RETRY_AFTER_SECONDS.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": TOO_MANY_STREAMS, "more_body": False})


class StreamCount:
    """Open streams per caller, in this process."""

    def __init__(self) -> None:
        self.open: Counter[Hashable] = Counter()

    @contextlib.contextmanager
    def admit(self, caller: Hashable, limit: int) -> Iterator[None]:
        """Count a stream of `caller` while inside; TooManyStreams when it holds `limit` already."""
        if self.open[caller] >= limit:
            raise TooManyStreams
        self.open[caller] += 1
        try:
            yield
        finally:
            self.open[caller] -= 1
            if not self.open[caller]:
                del self.open[caller]


class AdmittedStream(ServerSentEvent):
    """An SSE response that is admitted (`admit()` entered, TooManyStreams → 429) before its status goes
    out, and counted until it ends."""

    def __init__(self, content: Any, admit: Callable[[], contextlib.AbstractContextManager[None]]) -> None:
        super().__init__(content)
        self.admit = admit

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIResponse:
        return _Admitted(super().to_asgi_response(*args, **kwargs), self.admit)


class _Admitted(ASGIResponse):
    def __init__(self, stream: ASGIResponse, admit: Callable[[], contextlib.AbstractContextManager[None]]):
        self.stream, self.admit = stream, admit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            with self.admit():  # raises only on entry
                await self.stream(scope, receive, send)
        except TooManyStreams:
            await refuse(send)
