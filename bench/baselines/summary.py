"""The control-tower summary computed in Python from every row (clinic seed §2.2, fetch-all-and-aggregate):
shared by the strong baseline's route (`bench/baselines/http.py`) and the peer (`bench/peers/`).
Imports nothing heavy, so the peer's process starts without Keel's app."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

FUNNEL = ("new_inquiry", "first_consult", "follow_up", "converted")
LEAD_STATUSES = (
    "new_inquiry",
    "cro_queue",
    "first_consult",
    "follow_up",
    "converted",
    "lost",
    "not_interested",
)


def aggregate_summary(
    leads: list[dict[str, Any]],
    patients: list[dict[str, Any]],
    appointments: list[dict[str, Any]],
    today: dt.date,
) -> dict[str, Any]:
    """The dashboard summary computed in Python from every row, as the original did."""
    month_start = today.replace(day=1)
    month = [lead for lead in leads if lead["created_at"].date() >= month_start]
    status_counts = Counter(lead["status"] for lead in leads)
    month_status = Counter(lead["status"] for lead in month)
    total = len(month)
    converted = month_status["converted"]
    churned = month_status["lost"] + month_status["not_interested"]
    past_cro = sum(month_status[s] for s in ("first_consult", "follow_up", "converted"))
    cro_handled = past_cro + month_status["cro_queue"] + churned
    lead_created = {lead["id"]: lead["created_at"] for lead in leads}
    days = [
        (p["created_at"] - lead_created[p["lead_id"]]).total_seconds() / 86400
        for p in patients
        if p["lead_id"] in lead_created
    ]
    reached = {
        "new_inquiry": len(leads),
        "first_consult": sum(status_counts[s] for s in ("first_consult", "follow_up", "converted")),
        "follow_up": sum(status_counts[s] for s in ("follow_up", "converted")),
        "converted": status_counts["converted"],
    }
    todays = Counter(a["status"] for a in appointments if a["appointment_date"] == today)
    return {
        "kpis": {
            "leads_this_month": total,
            "conversion_rate": converted / total if total else 0.0,
            "cro_success_rate": past_cro / cro_handled if cro_handled else 0.0,
            "churn_rate": churned / total if total else 0.0,
            "avg_days_to_convert": sum(days) / len(days) if days else None,
        },
        "funnel": [{"stage": stage, "count": reached[stage]} for stage in FUNNEL],
        "lead_status_counts": [{"status": s, "count": status_counts[s]} for s in LEAD_STATUSES],
        "todays_appointments": [{"status": s, "count": n} for s, n in sorted(todays.items())],
        "refreshed_at": dt.datetime.now(dt.UTC).isoformat(),
    }
