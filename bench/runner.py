"""The bench runner: a fresh database, the served app, every workload, one table of ratios."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

log = logging.getLogger("bench")

# Run order: cheap and independent first; the 1M-row data set is built once and shared by the two
# control-tower workloads (read, refresh).
WORKLOADS = (
    "booking",
    "http_overhead",
    "bulk_update",
    "duplication",
    "chat",
    "lead_import",
    "control_tower",
    "refresh",
    "references",
    "scale",
    "live",
)
JWT_SECRET = "keel-bench-secret-0123456789abcdef0123456789"


@dataclass
class Result:
    """One row of the table. `ratio` is oriented so that bigger is better for Keel unless noted."""

    workload: str
    keel: str
    baseline: str
    ratio: float | None
    target: str
    passed: bool | None
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sizes:
    """Data sizes and repetitions: full run (DESIGN §10) or --quick / --tiny."""

    booking_requests: int
    concurrency: int
    ct_small: int
    ct_large: int
    dup_small: int
    dup_large: int
    dup_repeats: int
    bulk_elements: int
    bulk_repeats: int
    chat_delay: float
    chat_requests: int
    chat_concurrent: int
    import_rows: int
    read_repeats: int
    overhead_requests: int
    repeats: int  # interleaved Keel/baseline repetitions of the throughput workloads

    @classmethod
    def full(cls) -> Sizes:
        return cls(2000, 16, 1_000, 1_000_000, 1_000, 10_000, 3, 1_000, 5, 5.0, 20, 100, 10_000, 30, 5000, 3)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(450, 16, 1_000, 50_000, 200, 2_000, 2, 1_000, 3, 1.0, 8, 100, 5_000, 15, 1500, 3)

    @classmethod
    def tiny(cls) -> Sizes:
        return cls(40, 4, 100, 1_000, 50, 200, 1, 50, 1, 0.3, 2, 5, 200, 3, 100, 1)


@dataclass
class Context:
    """What every workload gets: the database, the served app, tokens, sizes, a shared cache."""

    admin_url: str  # superuser URL of the bench database (the DBA's psql)
    base_url: str  # the served app
    settings: Any  # api.settings.Settings as the server uses it
    sizes: Sizes
    mode: str
    llm: Any  # tests.llm_server.LLMServer, or None
    overrides: dict[str, Any] = field(default_factory=dict)  # the served app's settings (to serve another)
    cache: dict[str, Any] = field(default_factory=dict)

    def token(self, claims: dict[str, Any], ttl: int = 6 * 3600) -> str:
        from api.auth import TokenVerifier

        return TokenVerifier(self.settings).mint({k: str(v) for k, v in claims.items()}, ttl_seconds=ttl)

    def headers(self, claims: dict[str, Any], *, json_body: bool = True) -> tuple[tuple[str, str], ...]:
        items = [("Authorization", f"Bearer {self.token(claims)}")]
        if json_body:
            items.append(("Content-Type", "application/json"))
        return tuple(items)

    def connect(self) -> psycopg.Connection[Any]:
        """A DBA connection (superuser), autocommit."""
        return psycopg.connect(self.admin_url, autocommit=True)


@contextlib.contextmanager
def bench_database(server_url: str | None = None) -> Iterator[tuple[str, str]]:
    """(admin URL of a scratch database, a description of the server).

    The server is the test harness's (`tests/database.py`): `server_url`, else `KEEL_TEST_DATABASE_URL` /
    `DATABASE_URL`, else Docker's or a private embedded PostgreSQL; either way the bench works in a
    scratch database it creates and drops.
    """
    from tests.database import create_database, drop_database, postgres_server, url_for_database

    explicit = server_url or os.environ.get("KEEL_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    where = "DATABASE_URL server" if explicit else "private PostgreSQL (embedded or Docker)"
    with postgres_server(server_url) as url:
        name = create_database(url, prefix="keel_bench")
        try:
            yield url_for_database(url, name), where
        finally:
            drop_database(url, name)


def machine_info(admin_url: str) -> dict[str, Any]:
    with psycopg.connect(admin_url) as conn:
        version = conn.execute("SHOW server_version").fetchone()
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "postgresql": version[0] if version else "?",
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def server_overrides(admin_url: str, data_dir: Path, llm_url: str | None) -> dict[str, Any]:
    """Settings for the served app: the bench database, fixed secrets, the loopback LLM."""
    from api.crypto import generate_key_entry

    return {
        "database_url": admin_url,
        "database_read_url": None,
        "data_dir": data_dir,
        "jwt_secret": JWT_SECRET,
        "jwt_jwks_url": None,
        "jwt_audience": None,
        "jwt_issuer": None,
        "encryption_keys": generate_key_entry("bench1"),
        "notify_webhook_url": None,
        "openai_api_key": "bench-key" if llm_url else None,
        "openai_base_url": llm_url,
        "assistant_model": "bench-model",
        # 100 replies in flight at once, so "100 concurrent chats" measures the queue, not this cap.
        "assistant_concurrency": 100,
        "assistant_poll_interval": 1.0,
        "log_level": "WARNING",
    }


def fmt_table(results: list[Result], info: dict[str, Any], mode: str) -> Any:
    from rich.table import Table

    table = Table(
        title=f"Keel vs. the 'before' — {mode} run, {info['date']}, {info['nproc']} CPU, {info['memory_gb']} GB, "
        f"PostgreSQL {info['postgresql']}",
        show_lines=False,
    )
    for name in ("workload", "Keel", "baseline", "ratio", "target", "result"):
        table.add_column(name, overflow="fold")
    for r in results:
        verdict = "[green]pass[/]" if r.passed else "[red]FAIL[/]" if r.passed is False else "[dim]info[/]"
        ratio = "—" if r.ratio is None else f"{r.ratio:,.2f}×"
        table.add_row(r.workload, r.keel, r.baseline, ratio, r.target, verdict)
    return table


def markdown_table(results: list[Result]) -> str:
    lines = ["| workload | Keel | baseline | ratio | target | result |", "|---|---|---|---|---|---|"]
    for r in results:
        verdict = "pass" if r.passed else "**FAIL**" if r.passed is False else "info"
        ratio = "—" if r.ratio is None else f"{r.ratio:,.2f}×"
        lines.append(f"| {r.workload} | {r.keel} | {r.baseline} | {ratio} | {r.target} | {verdict} |")
    return "\n".join(lines)


def run_workloads(
    names: list[str],
    sizes: Sizes,
    mode: str,
    progress: Callable[[str], None],
    server_url: str | None = None,
    partial: Path | None = None,
) -> tuple[list[Result], dict[str, Any]]:
    """Provision, migrate, serve, run each named workload; the results and the machine info."""
    from api.migrate import migrate
    from bench.cpu import settle
    from bench.server import served

    llm = None
    results: list[Result] = []
    with (
        bench_database(server_url) as (admin_url, where),
        tempfile.TemporaryDirectory(prefix="keel-bench-") as data_dir,
    ):
        progress(f"database: {where}; migrating")
        migrate(admin_url)
        info = machine_info(admin_url)
        info["database"] = where
        if "chat" in names:
            from tests.llm_server import LLMServer

            llm = LLMServer().start()
        overrides = server_overrides(admin_url, Path(data_dir), llm.url if llm else None)
        from api.settings import Settings

        settings = Settings.from_env(**overrides)
        try:
            with served(overrides) as base_url:
                ctx = Context(admin_url, base_url, settings, sizes, mode, llm, overrides)
                for index, name in enumerate(names):
                    if index:  # the previous workload's dirty pages and exiting processes are not this one's
                        with ctx.connect() as conn:
                            conn.execute("CHECKPOINT")
                        waited = settle()
                        info.setdefault("settle_seconds", {})[name] = round(waited, 1)
                    progress(f"workload {name} …")
                    started = time.monotonic()
                    try:  # a workload that cannot even be imported fails alone, as one that raises does
                        rows = importlib.import_module(f"bench.workloads.{name}").run(ctx)
                    except Exception as exc:
                        log.debug("workload %s failed", name, exc_info=True)
                        rows = [Result(name, "error", "error", None, "", False, f"{type(exc).__name__}: {exc}",
                                       {"traceback": traceback.format_exc()})]  # fmt: skip
                    results.extend(rows)
                    if partial is not None:  # a long run killed midway still leaves what it measured
                        partial.write_text(json.dumps([asdict(r) for r in results], indent=2, default=str))
                    took = time.monotonic() - started
                    info.setdefault("workload_seconds", {})[name] = round(took, 1)
                    progress(f"workload {name} done in {took:.1f} s")
        finally:
            from bench.loadgen import shutdown

            shutdown()
            if llm is not None:
                llm.stop()
    return results, info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes; finishes in about two minutes")
    parser.add_argument("--tiny", action="store_true", help="smallest sizes (the smoke test's)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", choices=WORKLOADS, help="run only these workloads"
    )
    parser.add_argument(
        "--compare", metavar="OLD", help="flag each figure that regressed against a saved run"
    )
    parser.add_argument(
        "--against", metavar="NEW", help="with --compare: compare this saved run; run nothing"
    )
    parser.add_argument(
        "--measure-noise",
        nargs=2,
        metavar="RUN",
        help="record the spread of two saved runs in bench/results/noise.json",
    )
    args = parser.parse_args(argv)

    from rich.console import Console

    from bench import compare

    console = Console(width=None if sys.stdout.isatty() else 160)
    if args.measure_noise:
        first, second = (compare.load(p) for p in args.measure_noise)
        noise = compare.load(compare.NOISE) if compare.NOISE.exists() else {}
        noise[first["mode"]] = compare.measure_noise(first, second)
        compare.NOISE.write_text(json.dumps(noise, indent=2, ensure_ascii=False) + "\n")
        console.print(f"noise of {len(noise[first['mode']]['spread'])} figures written to {compare.NOISE}")
        return 0
    if args.compare and args.against:
        return 1 if compare.report(console, args.compare, compare.load(args.against)) else 0
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    sizes = Sizes.tiny() if args.tiny else Sizes.quick() if args.quick else Sizes.full()
    names = [n for n in WORKLOADS if not args.only or n in args.only]
    started = time.monotonic()
    partial = Path(args.json + ".partial") if args.json else None
    results, info = run_workloads(names, sizes, mode, lambda msg: console.log(msg), partial=partial)
    info["seconds"] = round(time.monotonic() - started, 1)
    console.print(fmt_table(results, info, mode))
    if "references" in names:
        from bench.workloads.references import references_table

        console.print(references_table(results))
    for r in results:
        if r.note:
            console.print(f"[bold]{r.workload}[/]: {r.note}")
    console.print(f"total {info['seconds']} s; load average at start {info['loadavg']}")
    run = json.loads(
        json.dumps({"mode": mode, "machine": info, "results": [asdict(r) for r in results]}, default=str)
    )
    if args.json:
        Path(args.json).write_text(json.dumps(run, indent=2))
        if partial is not None:
            partial.unlink(missing_ok=True)
    if mode == "full" and not args.only:  # the last full run, kept in the repository (no raw samples)
        compare.LATEST.write_text(json.dumps(compare.slim(run), indent=1, ensure_ascii=False) + "\n")
    failed = any(r.keel == "error" for r in results)
    if args.compare:
        failed = compare.report(console, args.compare, run) or failed
    return 1 if failed else 0
