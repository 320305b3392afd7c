"""A TCP proxy on loopback that a test steers: added latency, stalls and reset connections.

It runs its own asyncio loop in a daemon thread, so sync and async callers (tests, the bench) use it
alike, and a busy event loop under test cannot slow the proxy down:

    with TcpProxy(("127.0.0.1", pg_port)) as proxy:  # listens on 127.0.0.1:<proxy.port>
        proxy.latency = 0.01          # seconds added to every chunk, each direction (order kept)
        proxy.stall()                 # bytes stop flowing on every connection, new ones included
        proxy.resume()                # ...and flow again, nothing lost
        proxy.reset_all()             # every open connection ends with a TCP RST (mid-transaction)

The target is a (host, port) pair or the path of a Unix socket (`/tmp/.s.PGSQL.5432`). A stall is a
network partition as TCP sees it: connections stay open and silent. `resets` counts the connections
reset, so a test can show the fault really happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import socket
import struct
import threading
import time
from types import TracebackType
from typing import Self

CHUNK = 65536


class _Timer:
    """Wakes the proxy's loop at each chunk's due time to within ~0.1 ms.

    `asyncio.sleep` cannot: the loop waits in epoll, whose timeout is whole milliseconds (rounded up), so
    a 0.25 ms delay became a 1 ms one. This thread waits on a condition variable (nanosecond timeouts) and
    hands each due future back to the loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self.cond = threading.Condition()
        self.order = itertools.count()
        self.stopped = False
        threading.Thread(target=self._run, name="tcp-proxy-timer", daemon=True).start()

    def until(self, due: float) -> asyncio.Future[None]:
        future = self.loop.create_future()
        with self.cond:
            heapq.heappush(self.heap, (due, next(self.order), future))
            self.cond.notify()
        return future

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.heap and not self.stopped:
                    self.cond.wait()
                if self.stopped:
                    return
                wait = self.heap[0][0] - time.monotonic()
                if wait > 0:
                    self.cond.wait(wait)
                    continue
                due: list[asyncio.Future[None]] = []
                while self.heap and self.heap[0][0] <= time.monotonic():
                    due.append(heapq.heappop(self.heap)[2])
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self.loop.call_soon_threadsafe(_wake, due)


def _wake(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


class _Link:
    """One proxied connection: the client's and the server's stream writers, and the two pumps."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.writers = (client, upstream)
        self.tasks: list[asyncio.Task[None]] = []
        self.finished = 0

    def reset(self) -> None:
        for writer in self.writers:
            with contextlib.suppress(OSError):
                # SO_LINGER on, timeout 0: closing sends RST instead of FIN.
                writer.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class TcpProxy:
    def __init__(self, target: tuple[str, int] | str) -> None:
        self.target = target
        self.latency = 0.0
        self.resets = 0
        self._loop = asyncio.new_event_loop()
        self._flowing = asyncio.Event()
        self._links: set[_Link] = set()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._timer: _Timer | None = None
        self.port = 0

    # -- control (thread-safe) ------------------------------------------------------------------------

    def start(self) -> Self:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close())
        if self._timer is not None:
            self._timer.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def stall(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)

    def reset_all(self) -> int:
        """RST every open connection; returns how many were open."""
        return self._call(self._reset_all())

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _call(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # -- inside the proxy's loop ----------------------------------------------------------------------

    async def _listen(self) -> None:
        self._flowing.set()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._accept, sock=sock, backlog=512)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset_all()

    async def _reset_all(self) -> int:
        links = list(self._links)
        for link in links:
            link.reset()
        self._links.clear()
        self.resets += len(links)
        return len(links)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if isinstance(self.target, str):
                up_reader, up_writer = await asyncio.open_unix_connection(self.target)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _Link(writer, writer).reset()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, link)),
            asyncio.create_task(self._pump(up_reader, writer, link)),
        ]

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link) -> None:
        """Copy one direction; each chunk is written `latency` seconds after it was read, in order."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if due > time.monotonic():
                    if self._timer is None:
                        self._timer = _Timer(self._loop)
                    await self._timer.until(due)
                await self._flowing.wait()
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        try:
            while data := await reader.read(CHUNK):
                queue.put_nowait((time.monotonic() + self.latency, data))
            queue.put_nowait((time.monotonic() + self.latency, b""))
            await sender
        except OSError:  # one side reset or vanished: so does the other
            link.reset()
        finally:
            sender.cancel()
            link.finished += 1
            if link.finished == 2:
                self._links.discard(link)
                for end in link.writers:
                    end.close()
