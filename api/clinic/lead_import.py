"""Bulk lead import, shared by `POST /api/leads/import` and `keel leads import`.

Parsing, validation and encryption are CPU work. On the HTTP path they run in a small *process*
pool (threads would still hold the GIL against the event loop), one process fewer than the host has
cores so the event loop keeps one: each task gets the raw upload and a slice of row positions, and
sends back its slice as ready `COPY` text plus the rejected rows. The serving process streams those
bytes into a temporary staging table with `COPY ... FROM STDIN` in small chunks, yielding to the
event loop between them, and `clinic.import_staged_leads` then checks and inserts every row with one
set-based statement, in the same transaction. The CLI sends JSON batches to `clinic.import_leads`
instead, which stages each batch and inserts it the same way.
"""

from __future__ import annotations

import asyncio
import atexit
import csv
import functools
import io
import multiprocessing
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import msgspec
from psycopg import AsyncConnection, sql

from api.clinic.common import encrypt_lead_fields
from api.clinic.schemas import LeadCreate
from api.crypto import Keyring

MAX_ROWS = 10_000
CHUNK_ROWS = 500
SLICE_ROWS = 2_500
POOL_PROCESSES = max(1, min(2, (os.cpu_count() or 1) - 1))
COPY_CHUNK_BYTES = 128 * 1024
IMPORT_SQL = "SELECT clinic.import_leads(%(rows)s::jsonb, %(partial)s)"
FIELDS = tuple(LeadCreate.__struct_fields__)
STAGED_COLUMNS = ("index", "id", *FIELDS, "phone_bidx")
STAGE_SQL = "SELECT clinic.create_lead_import_staging()"
COPY_SQL = sql.SQL("COPY pg_temp.lead_import_rows ({}) FROM STDIN (ENCODING 'UTF8')").format(
    sql.SQL(", ").join(map(sql.Identifier, STAGED_COLUMNS))
)
IMPORT_STAGED = sql.SQL("clinic.import_staged_leads(%(partial)s)")
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_ENUM_FIELDS = ("gender", "status")
_GENDER_ALIASES = {"m": "male", "f": "female", "o": "other"}
_AT_FIELD = re.compile(r" - at `\$\.?([A-Za-z_]*)`")

_executor: ProcessPoolExecutor | None = None


class ImportRejected(Exception):
    """The upload as a whole is unusable (not JSON/CSV, too many rows, bad header)."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rejected_again, (self.detail, self.extra))


def _rejected_again(detail: str, extra: dict[str, Any]) -> ImportRejected:
    return ImportRejected(detail, **extra)


@dataclass
class Prepared:
    """Rows ready for clinic.import_leads, and the ones refused with their reasons."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: Prepared) -> None:
        self.rows.extend(other.rows)
        self.rejected.extend(other.rejected)


def executor() -> Executor:
    """The process pool for import work (created on first use; spawned, so no state is inherited)."""
    global _executor
    if _executor is None:
        _executor = ProcessPoolExecutor(
            max_workers=POOL_PROCESSES,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_watch_parent,
            initargs=(os.getpid(),),
        )
    return _executor


_apps_using_pool = 0


async def start_pool() -> None:
    """Application startup: spawn the import workers now rather than on the first import."""
    global _apps_using_pool
    _apps_using_pool += 1
    loop = asyncio.get_running_loop()
    pool = executor()
    await asyncio.gather(*(loop.run_in_executor(pool, os.getpid) for _ in range(POOL_PROCESSES)))


def stop_pool() -> None:
    """Application shutdown: stop the import workers once no application of this process uses them.

    Not left to `atexit` alone: an API process of `keel serve --workers N` ends by re-raising the
    SIGTERM that stopped it, so its exit handlers never run, and the pool's semaphores were reported
    leaked by the supervisor's resource tracker on every stop."""
    global _apps_using_pool
    _apps_using_pool = max(0, _apps_using_pool - 1)
    if _apps_using_pool == 0:
        shutdown_pool()


def shutdown_pool() -> None:
    """Stop the import workers (also runs at interpreter exit)."""
    global _executor
    if _executor is not None:
        _executor.shutdown(wait=True, cancel_futures=True)
        _executor = None


atexit.register(shutdown_pool)


def _watch_parent(parent_pid: int) -> None:
    """Worker initializer: exit when the serving process is gone, however it died."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="keel-parent-watch", daemon=True).start()


def parse_json(raw: bytes) -> list[Any]:
    try:
        rows = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ImportRejected(f"The body is not valid JSON: {exc}") from None
    if isinstance(rows, dict) and isinstance(rows.get("leads"), list):
        rows = rows["leads"]
    if not isinstance(rows, list):
        raise ImportRejected('Send a JSON array of leads (or {"leads": [...]}).')
    _check_count(len(rows))
    return rows


def parse_csv(raw: bytes | str) -> list[Any]:
    """Rows of a CSV with a header row; empty cells count as absent, header names are case-insensitive."""
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise ImportRejected("The CSV is not UTF-8 text.") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportRejected("The CSV is empty: it needs a header row naming the columns.") from None
    except csv.Error as exc:
        raise ImportRejected(f"The CSV cannot be read: {exc}") from None
    columns = [re.sub(r"[\s-]+", "_", name.strip().lower()) for name in header]
    unknown = [name for name in columns if name not in FIELDS]
    missing = [name for name in ("name", "phone") if name not in columns]
    duplicated = sorted({name for name in columns if columns.count(name) > 1})
    if unknown or missing or duplicated:
        raise ImportRejected(
            "The CSV header does not match the lead fields.",
            unknown_columns=unknown,
            missing_columns=missing,
            duplicated_columns=duplicated,
            allowed_columns=list(FIELDS),
        )
    rows: list[Any] = []
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(columns):
                rows.append({"__error__": f"{len(cells)} cells for {len(columns)} columns"})
            else:
                rows.append(
                    {col: cell.strip() for col, cell in zip(columns, cells, strict=False) if cell.strip()}
                )
            _check_count(len(rows))
    except csv.Error as exc:
        raise ImportRejected(f"The CSV cannot be read at line {reader.line_num}: {exc}") from None
    return rows


def _check_count(count: int) -> None:
    if count > MAX_ROWS:
        raise ImportRejected(f"An import takes at most {MAX_ROWS:,} rows.", max_rows=MAX_ROWS)


def _reason(exc: msgspec.ValidationError) -> dict[str, str]:
    message = str(exc)
    match = _AT_FIELD.search(message)
    if match:
        return {"field": match.group(1) or "(row)", "reason": message[: match.start()]}
    named = re.search(r"(?:unknown|missing required) field `([^`]*)`", message)
    return {"field": named.group(1) if named else "(row)", "reason": message}


def prepare_chunk(ring: Keyring, clinic_id: str, rows: Sequence[Any], start: int, from_csv: bool) -> Prepared:
    """Validate and encrypt rows[start:…] for the clinic; indexes in the result are positions in the whole
    upload. Each row gets its id here, as its ciphertexts are bound to it."""
    out = Prepared()
    for offset, raw in enumerate(rows):
        index = start + offset
        if not isinstance(raw, dict):
            out.rejected.append(
                {"index": index, "errors": [{"field": "(row)", "reason": "Expected an object"}]}
            )
            continue
        if "__error__" in raw:
            out.rejected.append({"index": index, "errors": [{"field": "(row)", "reason": raw["__error__"]}]})
            continue
        if from_csv:
            raw = dict(raw)
            for name in _ENUM_FIELDS:
                if isinstance(raw.get(name), str):
                    value = raw[name].lower().replace(" ", "_")
                    raw[name] = _GENDER_ALIASES.get(value, value) if name == "gender" else value
        try:
            lead = msgspec.convert(raw, LeadCreate, strict=not from_csv)
        except msgspec.ValidationError as exc:
            out.rejected.append({"index": index, "errors": [_reason(exc)]})
            continue
        lead_id = str(uuid.uuid4())
        row = encrypt_lead_fields(ring, lead.to_data(), clinic_id, lead_id)
        row["id"] = lead_id
        row["index"] = index
        out.rows.append(row)
    return out


def _chunks(rows: Sequence[Any]) -> Iterator[tuple[int, Sequence[Any]]]:
    for start in range(0, len(rows), CHUNK_ROWS):
        yield start, rows[start : start + CHUNK_ROWS]


def prepare_sync(
    ring: Keyring,
    clinic_id: str,
    rows: Sequence[Any],
    *,
    from_csv: bool,
    progress: Callable[[int], None] | None = None,
) -> Prepared:
    """The CLI's path: chunk by chunk in this thread, reporting rows done."""
    result = Prepared()
    for start, chunk in _chunks(rows):
        result.extend(prepare_chunk(ring, clinic_id, chunk, start, from_csv))
        if progress:
            progress(len(chunk))
    return result


def encode_rows(rows: list[dict[str, Any]]) -> str:
    """The rows as one JSON array text (sent as a jsonb parameter)."""
    return msgspec.json.encode(rows).decode("utf-8")


def _copy_escape(match: re.Match[str]) -> str:
    return _COPY_ESCAPES[match.group()]


def _copy_value(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    text = str(value)
    return _COPY_SPECIAL.sub(_copy_escape, text) if _COPY_SPECIAL.search(text) else text


def copy_rows(rows: list[dict[str, Any]]) -> bytes:
    """The rows as `COPY` text-format lines of STAGED_COLUMNS (what the staging table is fed)."""
    return "".join(
        "\t".join([_copy_value(row.get(name)) for name in STAGED_COLUMNS]) + "\n" for row in rows
    ).encode("utf-8")


def parse(raw: bytes, from_csv: bool) -> list[Any]:
    return parse_csv(raw) if from_csv else parse_json(raw)


@functools.lru_cache(maxsize=1)
def _parsed_once(raw: bytes, from_csv: bool) -> tuple[Any, ...]:
    """The pool tasks of one upload share its parse: each worker process parses it once, not per slice."""
    return tuple(parse(raw, from_csv))


def count_rows(raw: bytes, from_csv: bool) -> int:
    """Pool task: how many rows the upload has (raises ImportRejected when it is unusable)."""
    return len(_parsed_once(raw, from_csv))


def prepare_slice(
    ring: Keyring, clinic_id: str, raw: bytes, from_csv: bool, start: int, stop: int
) -> tuple[bytes, list[dict[str, Any]]]:
    """Pool task: rows[start:stop] validated and encrypted, as `COPY` text, and the rejects."""
    rows = _parsed_once(raw, from_csv)[start:stop]
    result = Prepared()
    for offset in range(0, len(rows), CHUNK_ROWS):
        result.extend(
            prepare_chunk(ring, clinic_id, rows[offset : offset + CHUNK_ROWS], start + offset, from_csv)
        )
    return copy_rows(result.rows), result.rejected


@dataclass
class PreparedCopy:
    """The HTTP path's result: the accepted rows as `COPY` text (one part per slice), the count, the rejects."""

    parts: list[bytes]
    accepted: int
    total: int
    rejected: list[dict[str, Any]]


async def prepare_upload(ring: Keyring, clinic_id: str, raw: bytes, *, from_csv: bool) -> PreparedCopy:
    """Parse, validate and encrypt an upload for the clinic in the import pool, slice by slice."""
    loop = asyncio.get_running_loop()
    pool = executor()
    total = await loop.run_in_executor(pool, count_rows, raw, from_csv)
    parts = await asyncio.gather(
        *(
            loop.run_in_executor(
                pool, prepare_slice, ring, clinic_id, raw, from_csv, start, min(start + SLICE_ROWS, total)
            )
            for start in range(0, total, SLICE_ROWS)
        )
    )
    rejected = [item for _, part_rejected in parts for item in part_rejected]
    return PreparedCopy([data for data, _ in parts if data], total - len(rejected), total, rejected)


async def stage_prepared(conn: AsyncConnection[dict[str, Any]], prepared: PreparedCopy) -> None:
    """Stage the rows with `COPY` into pg_temp.lead_import_rows inside the caller's transaction; then
    `IMPORT_STAGED` (clinic.import_staged_leads) inserts them and answers {imported, rejected}.

    The rows go out in COPY_CHUNK_BYTES pieces with a pass of the event loop after each, so a large
    import never holds the loop for more than one piece's copy into the connection's buffer."""
    await conn.execute(STAGE_SQL)
    async with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
        for part in prepared.parts:
            view = memoryview(part)
            for start in range(0, len(view), COPY_CHUNK_BYTES):
                await copy.write(view[start : start + COPY_CHUNK_BYTES])
                await asyncio.sleep(0)
