"""CPU time of processes, read from `/proc`: a server and its children, or a PostgreSQL server.

A throughput ratio on a shared 2-core machine depends on how the cores were shared (the load generator,
PostgreSQL and the server under test all want them); CPU time per request does not.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")


def _read_stat(pid: int) -> tuple[str, list[str]] | None:
    """(command name, the fields after it) of proc(5)'s `/proc/<pid>/stat`."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: it ends at the last ")".
    head, _, rest = text.rpartition(")")
    return head.partition("(")[2], rest.split()


def _stat(pid: int) -> list[str] | None:
    found = _read_stat(pid)
    return None if found is None else found[1]


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                out.extend(int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    return out


def tree_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) used so far by `pid`, its live descendants, and every child any
    of them has reaped (so a PostgreSQL backend that ended mid-run still counts, in its postmaster)."""
    total = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        fields = _stat(current)
        if fields is None:
            continue
        # After the command name: utime, stime, cutime, cstime are fields 14–17 of proc(5).
        total += sum(int(v) for v in fields[11:15]) / TICKS
        stack.extend(_children(current))
    return total


def postmaster_pid(conn: Any) -> int | None:
    """The PostgreSQL server's main process, when it runs on this machine and `/proc` shows it (not in
    a container or on another host); `conn` is any connection to it."""
    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    found = _read_stat(backend)
    # In a container the pid names another process here, if any: it must be a postgres.
    if found is None or not found[0].startswith("postgres"):
        return None
    return int(found[1][1])  # the backend's parent


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from the first line of `/proc/stat`."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def settle(window: float = 0.5, busy_below: float = 0.2, longest: float = 30.0) -> float:
    """Wait until the machine's CPUs are idle — under `busy_below` of them busy for two windows in a
    row — or `longest` seconds have passed; the seconds waited. A workload that starts while the previous
    one's processes are still exiting, or its PostgreSQL is still writing, shares the cores with them."""
    started = time.monotonic()
    quiet = 0
    while quiet < 2 and time.monotonic() - started < longest:
        busy0, total0 = _cpu_ticks()
        time.sleep(window)
        busy1, total1 = _cpu_ticks()
        quiet = quiet + 1 if (busy1 - busy0) < busy_below * max(1, total1 - total0) else 0
    return time.monotonic() - started
