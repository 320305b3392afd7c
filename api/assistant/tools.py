"""Read-only tools the assistant's model may call, each backed by `assistant.tool_<name>(args jsonb)`.

A tool runs in its own transaction under the asking staff member's claims (`sub`, `clinic_id`,
`role`), as `keel_api`: row-level security and the function's clinic filter keep the answer inside
the caller's clinic. Adding a tool is one SQL function in `sql/assistant/040_tools.sql` plus one line
in `TOOLS` below.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from api.auth import Principal
from api.db import Database
from api.errors import is_transient


@dataclass(frozen=True)
class Tool:
    """One function the model can call: its name, what it is for, and its JSON-schema parameters."""

    name: str
    description: str
    properties: dict[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()

    @property
    def function(self) -> sql.Composable:
        return sql.Identifier("assistant", f"tool_{self.name}")

    def spec(self) -> dict[str, Any]:
        """The OpenAI `tools` entry."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": self.properties,
                    "required": list(self.required),
                    "additionalProperties": False,
                },
            },
        }


DATE = {"type": "string", "format": "date", "description": "YYYY-MM-DD"}

TOOLS: tuple[Tool, ...] = (
    Tool(
        "find_patient",
        "Look up a patient of this clinic by UHID (e.g. P-000123).",
        {"uhid": {"type": "string", "description": "The patient's UHID"}},
        ("uhid",),
    ),
    Tool(
        "appointments",
        "This clinic's appointments of one day (default today), in time order, optionally "
        "only those of one status.",
        {
            "date": DATE,
            "status": {
                "type": "string",
                "enum": ["scheduled", "checked_in", "completed", "cancelled", "no_show"],
            },
        },
    ),
    Tool(
        "appointment_stats",
        "Live counts of this clinic's appointments in a date range (default this week, "
        "Monday to today) by status (incl. no_show, cancelled, completed) and by doctor.",
        {"from": DATE, "to": DATE},
    ),
    Tool(
        "control_tower",
        "The clinic's control-tower dashboard: KPIs (conversion, CRO success and churn rates, "
        "average days to convert), this month's lead figures, funnel, lead status counts, leads by source, "
        "today's appointments.",
    ),
    Tool(
        "clinic_overview",
        "Headline figures of this clinic: leads (total, recent, by status), patients "
        "(total, recently registered) and active staff by role.",
        {
            "days": {
                "type": "integer",
                "minimum": 1,
                "description": "Length of the recent period in days (default 7)",
            }
        },
    ),
    Tool("list_doctors", "The active doctors of this clinic and their specialties."),
)
BY_NAME = {tool.name: tool for tool in TOOLS}


def tool_specs() -> list[dict[str, Any]]:
    return [tool.spec() for tool in TOOLS]


async def call_tool(db: Database, caller: Principal, name: str, raw_arguments: str) -> tuple[str, bool]:
    """Run one tool call; returns (JSON text for the model, ok). Errors become a JSON error for the model."""
    tool = BY_NAME.get(name)
    if tool is None:
        return json.dumps({"error": f"unknown tool {name!r}"}), False
    try:
        arguments = json.loads(raw_arguments or "{}")
    except json.JSONDecodeError as exc:
        return json.dumps({"error": f"arguments are not valid JSON: {exc}"}), False
    if not isinstance(arguments, dict):
        return json.dumps({"error": "arguments must be a JSON object"}), False
    query = sql.SQL("SELECT {}(%(args)s) AS result").format(tool.function)
    try:
        result = await db.fetch_val(caller, query, {"args": Jsonb(arguments)})
    except psycopg.Error as exc:
        if is_transient(exc):
            raise  # the database is unavailable (api.errors.SQLSTATES): the reply is retried later
        message = exc.diag.message_primary or str(exc)
        return json.dumps({"error": message, "code": exc.sqlstate}), False
    return json.dumps(result, default=str), True
