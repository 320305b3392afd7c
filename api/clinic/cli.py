"""Clinic-records commands: `keel clinic create`, `keel leads import`, `keel keys generate|rotate`.

`api/cli.py` registers the groups `clinic`, `leads` and `keys` defined here. They act as a DBA:
the connection switches to keel_owner (row-level security bypassed) and calls the same SQL functions
the API calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import click
import psycopg
from psycopg.rows import dict_row
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from api.cli_context import database_url, ensure_schema_current, load_settings
from api.clinic import lead_import
from api.clinic.common import lead_field, lead_row
from api.clinic.schemas import LEAD_ENCRYPTED_FIELDS
from api.console.links import console_link
from api.crypto import CryptoError, Keyring, generate_key_entry, keyring_for
from api.errors import describe_db_error
from api.settings import Settings

INSERT_BATCH_ROWS = 2_000
stderr = Console(stderr=True)
AS_OWNER = "SET ROLE keel_owner"
CREATE_CLINIC = (
    "SELECT clinic_id, admin_id"
    " FROM clinic.create_clinic(%(name)s, %(timezone)s, %(prefix)s, %(admin_name)s, %(admin_email)s)"
)
IMPORT_LEADS = "SELECT clinic.import_leads(%(rows)s::jsonb, %(partial)s, %(clinic_id)s) AS result"
COUNT_LEADS_TO_REKEY = "SELECT clinic.count_leads_to_rekey(%(key_id)s) AS n"
LEADS_TO_REKEY = (
    "SELECT id, clinic_id, phone, alternate_phone, problem, treatment_doctor, treatment_suggested"
    " FROM clinic.leads_to_rekey(%(key_id)s, %(after)s, %(limit)s)"
)
REKEY_LEADS = "SELECT clinic.rekey_leads(%(updates)s::jsonb)"


@contextmanager
def _owner_connection(settings: Settings) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """A DBA connection to the configured (or embedded) database, acting as keel_owner."""
    with database_url(settings) as url:
        ensure_schema_current(url)
        with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
            conn.execute(AS_OWNER)
            yield conn


def _keyring(settings: Settings) -> Keyring:
    try:
        return keyring_for(settings)
    except CryptoError as exc:
        raise click.ClickException(str(exc)) from exc


def _db_error(exc: psycopg.Error) -> click.ClickException:
    return click.ClickException(describe_db_error(exc))


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
    )


# --- keel clinic ---------------------------------------------------------------------------------


@click.group("clinic")
def clinic() -> None:
    """Clinics (tenants)."""


@clinic.command("create")
@click.option("--name", required=True, help="The clinic's name.")
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone, e.g. Asia/Kolkata.")
@click.option("--uhid-prefix", default="P", show_default=True, help="Prefix of patient UHIDs (A-Z, 0-9).")
@click.option("--admin-name", required=True, help="Name of the clinic's first admin.")
@click.option("--admin-email", required=True, help="E-mail of the clinic's first admin.")
@click.option(
    "--token-ttl", default=86_400, show_default=True, type=click.IntRange(min=60), help="Token lifetime (s)."
)
def create_clinic(
    name: str, timezone: str, uhid_prefix: str, admin_name: str, admin_email: str, token_ttl: int
) -> None:
    """Create a clinic and its first admin; print their ids (and, in dev mode, a token for the admin)."""
    from api.auth import TokenVerifier

    settings = load_settings()
    with _owner_connection(settings) as conn:
        try:
            row = conn.execute(
                CREATE_CLINIC,
                {
                    "name": name,
                    "timezone": timezone,
                    "prefix": uhid_prefix,
                    "admin_name": admin_name,
                    "admin_email": admin_email,
                },
            ).fetchone()
        except psycopg.Error as exc:
            raise _db_error(exc) from exc
    assert row is not None
    result: dict[str, Any] = {"clinic_id": str(row["clinic_id"]), "admin_id": str(row["admin_id"])}
    verifier = TokenVerifier(settings)
    if verifier.secret:
        result["token"] = verifier.mint(
            {"sub": result["admin_id"], "clinic_id": result["clinic_id"], "role": "admin"},
            ttl_seconds=token_ttl,
        )
        result["console_url"] = console_link(result["token"])
    click.echo(json.dumps(result, indent=2))


# --- keel leads ----------------------------------------------------------------------------------


@click.group("leads")
def leads() -> None:
    """Leads."""


@leads.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--clinic", "clinic_id", required=True, type=click.UUID, help="The clinic the leads belong to.")
@click.option(
    "--partial", is_flag=True, help="Import the good rows and report the bad ones (default: all or nothing)."
)
@click.option(
    "--format", "fmt", type=click.Choice(["auto", "csv", "json"]), default="auto", show_default=True
)
def import_leads(file: Path, clinic_id: UUID, partial: bool, fmt: str) -> None:
    """Import leads from a CSV (with a header row) or a JSON array, encrypting their sensitive fields."""
    settings = load_settings()
    ring = _keyring(settings)
    from_csv = fmt == "csv" or (fmt == "auto" and file.suffix.lower() != ".json")
    try:
        rows = lead_import.parse(file.read_bytes(), from_csv)
    except lead_import.ImportRejected as exc:
        details = "".join(f"\n  {key}: {value}" for key, value in exc.extra.items())
        raise click.ClickException(exc.detail + details) from exc
    if not rows:
        raise click.ClickException("there are no leads in the file")

    with _progress() as progress:
        task = progress.add_task("Validating and encrypting", total=len(rows))
        prepared = lead_import.prepare_sync(
            ring, str(clinic_id), rows, from_csv=from_csv, progress=lambda n: progress.advance(task, n)
        )
    if prepared.rejected and (not partial or not prepared.rows):
        _report_rejected(prepared.rejected, len(rows))
        raise click.ClickException(
            f"{len(prepared.rejected)} of {len(rows)} rows are invalid; nothing was imported"
        )

    imported = 0
    rejected = list(prepared.rejected)
    with _owner_connection(settings) as conn, _progress() as progress:
        task = progress.add_task("Inserting", total=len(prepared.rows))
        try:
            with conn.transaction():
                for start in range(0, len(prepared.rows), INSERT_BATCH_ROWS):
                    batch = prepared.rows[start : start + INSERT_BATCH_ROWS]
                    row = conn.execute(
                        IMPORT_LEADS,
                        {"rows": lead_import.encode_rows(batch), "partial": partial, "clinic_id": clinic_id},
                    ).fetchone()
                    assert row is not None
                    result = row["result"]
                    if result["rejected"] and not partial:
                        rejected.extend(result["rejected"])
                        raise _Abort
                    imported += result["imported"]
                    rejected.extend(result["rejected"])
                    progress.advance(task, len(batch))
        except _Abort:
            _report_rejected(rejected, len(rows))
            raise click.ClickException(f"{len(rejected)} rows are invalid; nothing was imported") from None
        except psycopg.Error as exc:
            raise _db_error(exc) from exc
    if rejected:
        _report_rejected(rejected, len(rows))
    click.echo(json.dumps({"imported": imported, "rejected": len(rejected), "total_rows": len(rows)}))


class _Abort(Exception):
    """Roll the import transaction back."""


def _report_rejected(rejected: list[dict[str, Any]], total: int, shown: int = 20) -> None:
    stderr.print(
        f"[yellow]{len(rejected)} of {total} rows rejected[/yellow] (row numbers count data rows from 0):"
    )
    for item in sorted(rejected, key=lambda r: r["index"])[:shown]:
        reasons = "; ".join(f"{e['field']}: {e['reason']}" for e in item["errors"])
        stderr.print(f"  row {item['index']}: {reasons}", markup=False, highlight=False)
    if len(rejected) > shown:
        stderr.print(f"  … and {len(rejected) - shown} more")


# --- keel keys -----------------------------------------------------------------------------------


@click.group("keys")
def keys() -> None:
    """Field-encryption keys (KEEL_ENCRYPTION_KEYS)."""


@keys.command("generate")
@click.argument("key_id")
def generate_key(key_id: str) -> None:
    """Print a new key entry; append it to KEEL_ENCRYPTION_KEYS (comma-separated), then `keel keys rotate`."""
    try:
        click.echo(generate_key_entry(key_id))
    except CryptoError as exc:
        raise click.ClickException(str(exc)) from exc


@keys.command("rotate")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
def rotate_keys(batch_size: int) -> None:
    """Re-encrypt every lead field (and phone blind index) written under an older key, or in the older
    format (v1: not bound to its clinic and row), with the newest key in the current format.

    Runs in batches, each its own short transaction; safe to interrupt and run again.
    """
    settings = load_settings()
    # v1 values are read whatever KEEL_ACCEPT_V1_CIPHERTEXTS says: rewriting them is the point.
    ring = _keyring(settings).with_v1()
    moved = 0
    with _owner_connection(settings) as conn:
        total_row = conn.execute(COUNT_LEADS_TO_REKEY, {"key_id": ring.current_id}).fetchone()
        total = int(total_row["n"]) if total_row else 0
        with _progress() as progress:
            task = progress.add_task(f"Re-encrypting under {ring.current_id!r}", total=total)
            after: UUID | None = None
            while True:
                with conn.transaction():
                    batch = conn.execute(
                        LEADS_TO_REKEY, {"key_id": ring.current_id, "after": after, "limit": batch_size}
                    ).fetchall()
                    if not batch:
                        break
                    updates = [_reencrypt(ring, lead) for lead in batch]
                    conn.execute(REKEY_LEADS, {"updates": json.dumps(updates)})
                after = batch[-1]["id"]
                moved += len(batch)
                progress.advance(task, len(batch))
    click.echo(json.dumps({"reencrypted": moved, "key_id": ring.current_id}))


def _reencrypt(ring: Keyring, lead: dict[str, Any]) -> dict[str, Any]:
    """The lead's fields under the newest key, in the current format (bound to the lead's clinic and
    row, blind index per clinic), whatever key and format they were written with."""
    out: dict[str, Any] = {"id": str(lead["id"])}
    row = lead_row(lead["clinic_id"], lead["id"])
    try:
        for name in LEAD_ENCRYPTED_FIELDS:
            value = lead[name]
            clear = None if value is None else ring.decrypt(value, lead_field(name), row)
            out[name] = None if clear is None else ring.encrypt(clear, lead_field(name), row)
            if name == "phone" and clear is not None:
                out["phone_bidx"] = ring.phone_index(clear, str(lead["clinic_id"]))
    except CryptoError as exc:
        raise click.ClickException(f"lead {lead['id']}: {exc}") from exc
    return out


commands = [clinic, leads, keys]
"""What `api/cli.py` registers: `for command in commands: main.add_command(command)`."""
