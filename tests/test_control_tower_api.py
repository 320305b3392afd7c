"""/api/control-tower/*: documents, freshness, ETag/304, date-range validation, zeros for a new clinic,
the live intervention queue, and isolation between clinics."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tests.clinic_support import assert_problem
from tests.control_tower_support import (
    SeededClinic,
    add_staff,
    create_clinic,
    insert_lead,
    insert_patient,
    local_today,
    refresh,
)

Bearer = Callable[..., dict[str, str]]
ENDPOINTS = (
    "/api/control-tower/summary",
    "/api/control-tower/daily",
    "/api/control-tower/doctors",
    "/api/control-tower/intervention-queue",
)


def headers_for(bearer: Bearer, clinic: SeededClinic, role: str = "admin") -> dict[str, str]:
    return bearer(str(clinic.admin_id), clinic_id=str(clinic.id), role=role)


@pytest.fixture
def alpha(dba: psycopg.Connection[Any]) -> SeededClinic:
    return create_clinic(dba, "Alpha", "Asia/Kolkata")


@pytest.fixture
def beta(dba: psycopg.Connection[Any]) -> SeededClinic:
    return create_clinic(dba, "Beta", "America/New_York")


async def test_every_endpoint_answers_with_freshness_and_validators(
    client: httpx.AsyncClient, bearer: Bearer, alpha: SeededClinic
) -> None:
    for path in ENDPOINTS:
        response = await client.get(path, headers=headers_for(bearer, alpha))
        assert response.status_code == 200, (path, response.text)
        body = response.json()
        assert body["refreshed_at"] is not None, path
        assert isinstance(body["stale_seconds"], int) and body["stale_seconds"] >= 0, path
        assert response.headers["etag"].startswith('W/"'), path
        assert response.headers["cache-control"].startswith("private"), path
        assert "authorization" in response.headers["vary"].lower(), path


async def test_a_new_clinic_gets_zeros_over_http(
    client: httpx.AsyncClient, bearer: Bearer, alpha: SeededClinic
) -> None:
    headers = headers_for(bearer, alpha)
    summary = (await client.get("/api/control-tower/summary", headers=headers)).json()
    assert summary["kpis"] == {
        "conversion_rate": 0,
        "cro_success_rate": 0,
        "churn_rate": 0,
        "avg_days_to_convert": 0,
    }
    assert summary["lead_status_counts"][0] == {"status": "new_inquiry", "count": 0}
    assert [stage["stage"] for stage in summary["funnel"]] == [
        "new",
        "first_consult",
        "follow_up",
        "converted",
    ]
    daily = (
        await client.get("/api/control-tower/daily?from=2026-02-01&to=2026-02-28", headers=headers)
    ).json()
    assert len(daily["days"]) == 28 and daily["days"][0]["day"] == "2026-02-01"
    assert all(row["leads_created"] == 0 and row["appointments_booked"] == 0 for row in daily["days"])
    doctors = (
        await client.get("/api/control-tower/doctors?from=2026-02-01&to=2026-02-28", headers=headers)
    ).json()
    assert doctors["doctors"] == []


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("from=2026-03-10&to=2026-03-01", "after"),
        ("from=2025-01-01&to=2026-01-02", "366"),
        ("from=2026-02-30", "not a valid date"),
        ("from=yesterday", "YYYY-MM-DD"),
        ("to=2026-1-5", "YYYY-MM-DD"),
        ("from=", "YYYY-MM-DD"),
        ("from=9999-12-31", "after"),  # to defaults to today
    ],
)
async def test_date_range_validation(
    client: httpx.AsyncClient, bearer: Bearer, alpha: SeededClinic, query: str, fragment: str
) -> None:
    for path in ("/api/control-tower/daily", "/api/control-tower/doctors"):
        response = await client.get(f"{path}?{query}", headers=headers_for(bearer, alpha))
        body = assert_problem(response, 422)
        assert fragment in body["detail"], body
        assert body["code"].startswith("22")


async def test_range_defaults_and_edges(
    client: httpx.AsyncClient, bearer: Bearer, alpha: SeededClinic, dba: psycopg.Connection[Any]
) -> None:
    headers = headers_for(bearer, alpha)
    today = local_today(dba, alpha.timezone)
    default = (await client.get("/api/control-tower/daily", headers=headers)).json()
    assert (default["from"], default["to"]) == ((today - timedelta(days=29)).isoformat(), today.isoformat())
    assert len(default["days"]) == 30
    only_to = (await client.get("/api/control-tower/daily?to=2026-01-31", headers=headers)).json()
    assert (only_to["from"], only_to["to"]) == ("2026-01-02", "2026-01-31")
    single = (
        await client.get("/api/control-tower/daily?from=2026-01-31&to=2026-01-31", headers=headers)
    ).json()
    assert [row["day"] for row in single["days"]] == ["2026-01-31"]
    longest = await client.get("/api/control-tower/daily?from=2024-01-01&to=2024-12-31", headers=headers)
    assert longest.status_code == 200 and len(longest.json()["days"]) == 366


async def test_conditional_get_answers_304_until_the_figures_change(
    client: httpx.AsyncClient, bearer: Bearer, alpha: SeededClinic, dba: psycopg.Connection[Any]
) -> None:
    headers = headers_for(bearer, alpha)
    today = local_today(dba, alpha.timezone)
    path = f"/api/control-tower/daily?from={today - timedelta(days=3)}&to={today}"
    first = await client.get(path, headers=headers)
    etag = first.headers["etag"]

    again = await client.get(path, headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag and again.headers["cache-control"] == first.headers["cache-control"]
    # Weak comparison, lists and "*" (RFC 9110).
    strong = etag.removeprefix("W/")
    assert (await client.get(path, headers={**headers, "If-None-Match": strong})).status_code == 304
    listed = f'"nope", {etag}'
    assert (await client.get(path, headers={**headers, "If-None-Match": listed})).status_code == 304
    assert (await client.get(path, headers={**headers, "If-None-Match": "*"})).status_code == 304
    assert (await client.get(path, headers={**headers, "If-None-Match": '"other"'})).status_code == 200
    # Another range is another document.
    other = await client.get(
        f"{path[:-10]}{today - timedelta(days=1)}", headers={**headers, "If-None-Match": etag}
    )
    assert other.status_code == 200

    # New data alone changes nothing until a refresh; then the validator changes.
    insert_lead(dba, alpha.id, date_added=today, status="converted")
    assert (await client.get(path, headers={**headers, "If-None-Match": etag})).status_code == 304
    refresh(dba)
    changed = await client.get(path, headers={**headers, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["days"][-1]["leads_converted"] == 1

    summary = await client.get("/api/control-tower/summary", headers=headers)
    revalidated = await client.get(
        "/api/control-tower/summary", headers={**headers, "If-None-Match": summary.headers["etag"]}
    )
    assert revalidated.status_code == 304


async def test_summary_figures(
    client: httpx.AsyncClient, bearer: Bearer, alpha: SeededClinic, dba: psycopg.Connection[Any]
) -> None:
    today = local_today(dba, alpha.timezone)
    first_of_month = today.replace(day=1)
    statuses = [
        "new_inquiry",
        "cro_queue",
        "first_consult",
        "follow_up",
        "converted",
        "converted",
        "lost",
        "not_interested",
    ]
    for status in statuses:
        insert_lead(dba, alpha.id, date_added=first_of_month, status=status, source="google")
    insert_lead(dba, alpha.id, date_added=first_of_month - timedelta(days=1), status="lost")  # last month
    leads = dba.execute(
        "SELECT id, date_added FROM clinic.leads WHERE clinic_id = %s AND status = 'converted'", (alpha.id,)
    ).fetchall()
    for n, (lead_id, added) in enumerate(leads):
        dba.execute(
            "INSERT INTO clinic.patients (clinic_id, name, mobile, lead_id, registration_date)"
            " VALUES (%s, 'P', '+919800000001', %s, %s)",
            (alpha.id, lead_id, added + timedelta(days=2 + n)),
        )
    refresh(dba)
    summary = (await client.get("/api/control-tower/summary", headers=headers_for(bearer, alpha))).json()
    month = summary["month"]
    assert month["leads"] == 8 and month["converted"] == 2
    assert summary["kpis"]["conversion_rate"] == 0.25
    assert summary["kpis"]["churn_rate"] == 0.25  # (1 lost + 1 not interested) / 8
    assert summary["kpis"]["cro_success_rate"] == pytest.approx(
        round(4 / 7, 4)
    )  # 4 at consult+ of 7 picked up
    assert summary["funnel"] == [
        {"stage": "new", "count": 8},
        {"stage": "first_consult", "count": 4},
        {"stage": "follow_up", "count": 3},
        {"stage": "converted", "count": 2},
    ]
    counts = {item["status"]: item["count"] for item in summary["lead_status_counts"]}
    assert counts["lost"] == 2 and sum(counts.values()) == 9  # all dates
    assert summary["leads_by_source"] == [{"source": "google", "leads": 8, "converted": 2}]
    assert summary["kpis"]["avg_days_to_convert"] == 2.5  # registered 2 and 3 days after, this month


async def test_intervention_queue_is_live_oldest_first(
    client: httpx.AsyncClient,
    bearer: Bearer,
    alpha: SeededClinic,
    beta: SeededClinic,
    dba: psycopg.Connection[Any],
) -> None:
    now = datetime.now(UTC)
    cro = add_staff(dba, alpha.id, "Carla CRO", "cro")
    today = local_today(dba, alpha.timezone)
    stale = {
        days: insert_lead(
            dba,
            alpha.id,
            date_added=today - timedelta(days=days + 1),
            status="cro_queue",
            updated_at=now - timedelta(days=days, hours=1),
            assigned_to_id=cro,
            name=f"Stalled {days}",
        )
        for days in (4, 12, 7, 3)
    }
    insert_lead(
        dba, alpha.id, date_added=today, status="cro_queue", updated_at=now - timedelta(days=1)
    )  # fresh
    insert_lead(dba, alpha.id, date_added=today, status="follow_up", updated_at=now - timedelta(days=30))
    insert_lead(dba, beta.id, date_added=today, status="cro_queue", updated_at=now - timedelta(days=40))
    headers = headers_for(bearer, alpha, role="cro")

    # Live: no refresh needed.
    queue = (await client.get("/api/control-tower/intervention-queue", headers=headers)).json()
    assert [item["days_stalled"] for item in queue["items"]] == [12, 7, 4, 3]
    assert [item["lead_id"] for item in queue["items"]] == [str(stale[d]) for d in (12, 7, 4, 3)]
    assert queue["items"][0]["assigned_to_name"] == "Carla CRO"
    assert (queue["total"], queue["limit"], queue["offset"], queue["min_days"]) == (4, 50, 0, 3)
    assert queue["stale_seconds"] == 0

    page = (
        await client.get("/api/control-tower/intervention-queue?min_days=5&limit=1&offset=1", headers=headers)
    ).json()
    assert [item["days_stalled"] for item in page["items"]] == [7] and page["total"] == 2
    everyone = (await client.get("/api/control-tower/intervention-queue?min_days=0", headers=headers)).json()
    assert everyone["total"] == 5

    etag = (await client.get("/api/control-tower/intervention-queue", headers=headers)).headers["etag"]
    assert (
        await client.get("/api/control-tower/intervention-queue", headers={**headers, "If-None-Match": etag})
    ).status_code == 304
    dba.execute("UPDATE clinic.leads SET status = 'first_consult' WHERE id = %s", (stale[12],))
    moved = await client.get(
        "/api/control-tower/intervention-queue", headers={**headers, "If-None-Match": etag}
    )
    assert moved.status_code == 200 and moved.json()["total"] == 3

    for bad in ("min_days=-1", "min_days=abc", "limit=0", "limit=501", "offset=-1"):
        response = await client.get(f"/api/control-tower/intervention-queue?{bad}", headers=headers)
        assert_problem(response, (400, 422))


async def test_each_clinic_sees_only_its_own_figures(
    client: httpx.AsyncClient,
    bearer: Bearer,
    alpha: SeededClinic,
    beta: SeededClinic,
    dba: psycopg.Connection[Any],
) -> None:
    day = date(2026, 1, 15)
    for _ in range(3):
        insert_lead(dba, alpha.id, date_added=day, status="lost")
    insert_lead(dba, beta.id, date_added=day, status="converted")
    refresh(dba)
    path = "/api/control-tower/daily?from=2026-01-15&to=2026-01-15"
    a = (await client.get(path, headers=headers_for(bearer, alpha))).json()["days"][0]
    b = (await client.get(path, headers=headers_for(bearer, beta))).json()["days"][0]
    assert (a["leads_created"], a["leads_lost"], a["leads_converted"]) == (3, 3, 0)
    assert (b["leads_created"], b["leads_lost"], b["leads_converted"]) == (1, 0, 1)
    sa = (await client.get("/api/control-tower/summary", headers=headers_for(bearer, alpha))).json()
    assert sa["clinic_id"] == str(alpha.id)
    assert sum(item["count"] for item in sa["lead_status_counts"]) == 3


async def test_tokens_without_a_clinic_are_refused(client: httpx.AsyncClient, bearer: Bearer) -> None:
    for path in ENDPOINTS:
        assert_problem(await client.get(path), 401)
        assert_problem(await client.get(path, headers=bearer("user_clerk_1")), 403)
        assert_problem(await client.get(path, headers=bearer("x", clinic_id="not-a-uuid")), 403)


async def test_a_token_for_a_clinic_that_does_not_exist_gets_401(
    client: httpx.AsyncClient, bearer: Bearer
) -> None:
    # Its subject is no active staff member of that clinic (clinic.request_claims).
    headers = bearer("someone", clinic_id="00000000-0000-4000-8000-000000000000", role="admin")
    for path in ENDPOINTS:
        assert_problem(await client.get(path, headers=headers), 401)


async def test_doctors_totals_and_day_by_day(
    client: httpx.AsyncClient, bearer: Bearer, alpha: SeededClinic, dba: psycopg.Connection[Any]
) -> None:
    busy = add_staff(dba, alpha.id, "Dr Busy", "doctor")
    idle = add_staff(dba, alpha.id, "Dr Idle", "doctor")
    patient = insert_patient(dba, alpha.id, registration_date=date(2026, 1, 1))
    slots = [
        (date(2026, 1, 5), "09:00", "09:30", "completed"),
        (date(2026, 1, 5), "09:30", "09:45", "no_show"),
        (date(2026, 1, 5), "09:30", "10:30", "cancelled"),  # frees its slot: not in the load
        (date(2026, 1, 7), "10:00", "10:20", "scheduled"),
    ]
    for day, start, end, status in slots:
        dba.execute(
            "INSERT INTO clinic.appointments (clinic_id, patient_id, doctor_id, appointment_date, start_time,"
            " end_time, status) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (alpha.id, patient, busy, day, start, end, status),
        )
    refresh(dba)
    headers = headers_for(bearer, alpha)
    path = "/api/control-tower/doctors?from=2026-01-01&to=2026-01-31"
    doctors = (await client.get(path, headers=headers)).json()["doctors"]
    assert [d["name"] for d in doctors] == ["Dr Busy", "Dr Idle"]
    first = doctors[0]
    assert (first["appointments"], first["completed"], first["no_show"], first["cancelled"]) == (3, 1, 1, 1)
    assert (first["booked_minutes"], first["days_worked"], first["avg_booked_minutes_per_day_worked"]) == (
        65,
        2,
        32.5,
    )
    assert "days" not in first
    assert doctors[1]["doctor_id"] == str(idle) and doctors[1]["appointments"] == 0

    detailed = await client.get(f"{path}&by_day=true", headers=headers)
    days = detailed.json()["doctors"][0]["days"]
    assert days == [
        {"day": "2026-01-05", "appointments": 2, "booked_minutes": 45},
        {"day": "2026-01-07", "appointments": 1, "booked_minutes": 20},
    ]
    assert detailed.json()["doctors"][1]["days"] == []
    assert detailed.headers["etag"] != (await client.get(path, headers=headers)).headers["etag"]
