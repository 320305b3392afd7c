"""Issue 13, finding 5 (its class elsewhere): the assistant tells the model the clinic's date, not the
server's — "today's appointments" are the clinic's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from tests.assistant_support import StaffMember, chat, llm, settings_overrides, wait_final, worker
from tests.llm_server import LLMServer

__all__ = ["llm", "settings_overrides", "worker"]  # fixtures used here


async def test_hardening_assistant_prompt_uses_clinic_date(
    client: httpx.AsyncClient,
    dba: psycopg.Connection[Any],
    bearer: Callable[..., dict[str, str]],
    llm: LLMServer,
    worker: Any,
) -> None:
    # UTC+14 and UTC-10 are always on different dates, so one of them differs from the server's.
    expected = {}
    for name, timezone, prefix in (
        ("East", "Pacific/Kiritimati", "EST"),
        ("West", "Pacific/Honolulu", "WST"),
    ):
        clinic_id, admin_id = dba.execute(
            "SELECT clinic_id, admin_id FROM clinic.create_clinic(%s, %s, %s, %s, %s)",
            (name, timezone, prefix, f"{name} Admin", f"admin@{name.lower()}.example"),
        ).fetchone()
        who = StaffMember(
            str(clinic_id), str(admin_id), bearer(str(admin_id), clinic_id=str(clinic_id), role="admin")
        )
        sent = await chat(client, who, f"Hello from {name}")
        reply = await wait_final(client, who, sent["message_id"])
        assert reply["status"] == "done", reply
        expected[name] = str(dba.execute("SELECT (now() AT TIME ZONE %s)::date", (timezone,)).fetchone()[0])

    prompts = {}
    for request in llm.completions():
        messages = request["body"]["messages"]
        prompts[messages[-1]["content"].removeprefix("Hello from ")] = messages[0]["content"]
    assert expected["East"] != expected["West"]
    for name, day in expected.items():
        assert day in prompts[name], (name, day)
