"""The HTTP protocol Keel serves with: a response of known length leaves in one write (head and body),
a stream's head leaves at once, and a stream's `BodyWriter` writes chunks as its send would. Driven
through uvicorn's protocol with a transport that records writes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.response import Stream
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from api.body_writer import BODY_WRITER, BodyWriter
from api.serving import HttpProtocol, server_config
from api.settings import Settings


class RecordingTransport(asyncio.Transport):
    """What the protocol writes, call by call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


@get("/fixed")
async def fixed() -> dict[str, str]:
    return {"hello": "world"}


def streaming_app(release: asyncio.Event) -> Litestar:
    async def chunks() -> Any:
        await release.wait()
        yield b"first"

    @get("/stream")
    async def stream() -> Stream:
        return Stream(chunks(), media_type="text/event-stream")

    return Litestar([fixed, stream])


async def serve_one(protocol_class: type[HttpToolsProtocol], app: Litestar, request: bytes) -> Any:
    config = server_config(app, Settings(), lifespan="off", access_log=False)
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    return protocol, transport


async def wait_for(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("timed out")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_a_response_of_known_length_is_one_write(method: str) -> None:
    app = streaming_app(asyncio.Event())
    request = f"{method} /fixed HTTP/1.1\r\nHost: keel\r\n\r\n".encode()
    protocol, transport = await serve_one(HttpProtocol, app, request)
    await wait_for(lambda: protocol.cycle and protocol.cycle.response_complete)
    assert len(transport.writes) == 1, transport.writes
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    if method == "GET":
        assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 17" in head.lower()
        assert body == b'{"hello":"world"}'
    else:  # no HEAD route (Litestar answers 405): the head alone, still one write
        assert head.startswith(b"HTTP/1.1 405") and body == b""
    protocol.connection_lost(None)

    # uvicorn's own protocol writes the head and the body apart: what HttpProtocol saves.
    plain, plain_transport = await serve_one(HttpToolsProtocol, app, request)
    await wait_for(lambda: plain.cycle and plain.cycle.response_complete)
    assert b"".join(plain_transport.writes) == transport.writes[0]
    assert len(plain_transport.writes) == (2 if method == "GET" else 1)
    plain.connection_lost(None)


async def test_a_stream_starts_before_its_first_chunk() -> None:
    release = asyncio.Event()
    app = streaming_app(release)
    protocol, transport = await serve_one(HttpProtocol, app, b"GET /stream HTTP/1.1\r\nHost: keel\r\n\r\n")
    await wait_for(lambda: transport.writes)
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK") and b"chunked" in transport.writes[0]
    assert not protocol.cycle.response_complete
    release.set()
    await wait_for(lambda: protocol.cycle.response_complete)
    assert b"".join(transport.writes[1:]) == b"5\r\nfirst\r\n0\r\n\r\n"
    protocol.connection_lost(None)


async def test_connection_close_is_kept_after_the_single_write() -> None:
    app = streaming_app(asyncio.Event())
    request = b"GET /fixed HTTP/1.1\r\nHost: keel\r\nConnection: close\r\n\r\n"
    _, transport = await serve_one(HttpProtocol, app, request)
    await wait_for(lambda: transport.closed)
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b'{"hello":"world"}')
    assert b"connection: close" in transport.writes[0].lower()


async def test_a_body_writer_writes_chunks_of_a_started_stream_as_send_would() -> None:
    """The live relay's direct write (api.body_writer.BodyWriter): a chunk framed as uvicorn frames one,
    written only while the stream is started, open, and its socket takes bytes (flow control)."""
    release = asyncio.Event()
    protocol, transport = await serve_one(
        HttpProtocol, streaming_app(release), b"GET /stream HTTP/1.1\r\nHost: keel\r\n\r\n"
    )
    writer = protocol.cycle.scope["extensions"][BODY_WRITER]
    assert not writer.write(BodyWriter.chunk(b"early"))  # no head yet
    await wait_for(lambda: transport.writes)
    assert writer.write(BodyWriter.chunk(b"direct"))
    protocol.pause_writing()  # the client's socket is full: the stream's own send waits for it instead
    assert not writer.write(BodyWriter.chunk(b"paused"))
    protocol.resume_writing()
    release.set()
    await wait_for(lambda: protocol.cycle.response_complete)
    assert not writer.write(BodyWriter.chunk(b"late"))  # the response is over
    assert b"".join(transport.writes[1:]) == b"6\r\ndirect\r\n5\r\nfirst\r\n0\r\n\r\n"
    protocol.connection_lost(None)

    fixed_length, fixed_transport = await serve_one(
        HttpProtocol,
        streaming_app(release),
        b"GET /fixed HTTP/1.1\r\nHost: keel\r\nConnection: close\r\n\r\n",
    )
    await wait_for(lambda: fixed_transport.closed)
    assert not fixed_length.cycle.scope["extensions"][BODY_WRITER].write(BodyWriter.chunk(b"x"))
    assert len(fixed_transport.writes) == 1


async def test_a_body_writer_writes_nothing_once_the_client_left() -> None:
    protocol, transport = await serve_one(
        HttpProtocol, streaming_app(asyncio.Event()), b"GET /stream HTTP/1.1\r\nHost: keel\r\n\r\n"
    )
    await wait_for(lambda: transport.writes)
    writer = protocol.cycle.scope["extensions"][BODY_WRITER]
    protocol.connection_lost(None)
    assert not writer.write(BodyWriter.chunk(b"gone")) and len(transport.writes) == 1
