"""Property-based fuzzing of the whole OpenAPI document with Schemathesis (issue 14).

Runs only with KEEL_FUZZ=1 (CI sets it on the PostgreSQL 18 leg); KEEL_FUZZ_EXAMPLES sets the example
budget per operation (CI: the default below), KEEL_FUZZ_SEED the seed. Four identities, each over its
product's operations: a clinic admin and a front-desk member (clinic, assistant, ops), a CallMaster owner
and a crew member assigned to the seeded show (CallMaster). Every check is on and every phase runs
(examples and coverage to the end, then fuzzing and stateful through the document's links for
KEEL_FUZZ_SECONDS); the server is the real app on
loopback over a real PostgreSQL with seeded rows, whose ids the hooks (tests/fuzz_hooks.py) mix into
path parameters. Pass = Schemathesis exits 0: no server error, no undocumented status, no schema or
content-type violation, bad input rejected, missing auth refused.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.contract_support import seed_world
from tests.factories import KEYS_ONE

EXAMPLES = int(os.environ.get("KEEL_FUZZ_EXAMPLES", "3"))
SEED = int(os.environ.get("KEEL_FUZZ_SEED", "14"))
SECONDS = int(os.environ.get("KEEL_FUZZ_SECONDS", "20"))  # per identity, for the random phases
RUN_TIMEOUT_S = 2 * SECONDS + 300
SYSTEMATIC, RANDOM = "examples,coverage", "fuzzing,stateful"
"""The phases run in two passes per identity: the systematic ones to the end, untimed, then the random
ones for SECONDS. One timed run of all four let a loaded machine spend the whole budget on the first two
(CI saw the fuzzing and stateful phases get 0 s while the other leg ran beside it)."""
MIN_RANDOM_CASES = 50
CONFIG = Path(__file__).resolve().parent / "schemathesis.toml"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"keel-fuzz-webhook-secret-32byte").decode()
IDENTITIES = {  # identity → schemathesis operation filter
    "clinic_admin": ["--exclude-tag-regex", "^callmaster"],
    "clinic_front_desk": ["--exclude-tag-regex", "^callmaster"],
    "owner": ["--include-tag-regex", "^callmaster"],
    "crew": ["--include-tag-regex", "^callmaster"],
}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Everything configured, so no answer is a 503 for a missing setting: an encryption key, a webhook
    secret, and an LLM address (nothing listens there; no worker runs, chat only enqueues)."""
    return {
        "encryption_keys": KEYS_ONE,
        "clerk_webhook_secret": WEBHOOK_SECRET,
        "openai_api_key": "fuzz",
        "openai_base_url": "http://127.0.0.1:9/v1",
    }


async def run_schemathesis(
    base_url: str,
    headers: dict[str, str],
    filters: list[str],
    ids: dict[str, str],
    report: Path,
    phases: str,
    seconds: int | None,
) -> tuple[int, str]:
    argv = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--no-color",
        "--config-file",
        str(CONFIG),
        "run",
        f"{base_url}/schema/openapi.json",
        "--checks",
        "all",
        "--seed",
        str(SEED),
        "--max-examples",
        str(EXAMPLES),
        "--phases",
        phases,
        *(["--max-time", str(seconds)] if seconds else []),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        *filters,
    ]
    for name, value in headers.items():
        argv += ["--header", f"{name}: {value}"]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks",
        "KEEL_FUZZ_IDS": json.dumps(ids),
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    proc = await asyncio.create_subprocess_exec(  # in the report's directory: Schemathesis caches there
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=report.parent
    )
    out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT_S)
    return proc.returncode or 0, out.decode(errors="replace")


async def test_schemathesis_whole_document_both_products(
    client: httpx.AsyncClient,
    dba: psycopg.Connection[Any],
    bearer: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    world = await seed_world(dba, client, bearer)
    failures = []
    for identity, filters in IDENTITIES.items():
        for phases, seconds in ((SYSTEMATIC, None), (RANDOM, SECONDS)):
            name = f"{identity}-{phases.split(',')[0]}"
            code, output = await run_schemathesis(
                str(client.base_url), world.headers[identity], filters, world.ids, tmp_path / f"{name}.ndjson",
                phases, seconds,
            )  # fmt: skip
            (tmp_path / f"{name}.txt").write_text(output)
            generated = re.search(r"(\d+) generated", output)
            print(f"schemathesis as {identity}, {phases}: exit {code}, {generated.group(0) if generated else 'none'}")
            if seconds is None:  # every selected operation went through both systematic phases
                assert re.search(r"✅\s+Coverage", output), f"{name}: coverage did not finish:\n{output[-5000:]}"
            else:
                cases = int(generated.group(1)) if generated else 0
                assert cases >= MIN_RANDOM_CASES, f"{name} hardly ran:\n{output[-5000:]}"
            if code != 0:
                failures.append(f"{name} (whole output in {tmp_path / name}.txt):\n{output[-20000:]}")
    assert not failures, "\n\n".join(failures)
