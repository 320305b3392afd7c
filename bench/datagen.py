"""Bench data, generated set-based in SQL (generate_series), never row by row.

Bulk loads run as the DBA with `session_replication_role = replica`, which skips triggers (the outbox
would otherwise queue a million `lead.created` events for the dispatcher to chew on during the
measurements): every column a trigger would fill — UHIDs, appointment snapshots, owner keys — is
filled here by the same statement instead, consistent with the rows it refers to.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from tests import factories

# A well-formed ciphertext look-alike ('v2:<key id>:<43 base64url chars>') that the column CHECKs accept;
# the bench never decrypts bulk-generated leads. Current format: v1 rows would fill leads_v1_ciphertext_idx.
FAKE_CIPHER = sql.SQL(
    "'v2:bench1:' || translate(encode(decode(md5(g::text || {salt}) || md5(g::text), 'hex'), 'base64'), '+/=', '-_')"
)


@dataclass
class Clinic:
    """A generated clinic: ids the workloads need."""

    id: str
    admin_id: str
    prefix: str
    doctor_ids: list[str] = field(default_factory=list)
    patient_ids: list[str] = field(default_factory=list)

    def claims(self, role: str = "admin", sub: str | None = None) -> dict[str, Any]:
        return {"sub": sub or self.admin_id, "clinic_id": self.id, "role": role}


def create_clinic(conn: psycopg.Connection[Any], label: str) -> Clinic:
    """A clinic and its admin through `clinic.create_clinic`, as a DBA would (the tests' factory)."""
    clinic = factories.create_clinic(conn, f"Bench {label}", "UTC", prefix="B" + uuid.uuid4().hex[:6].upper())
    return Clinic(str(clinic.id), str(clinic.admin_id), clinic.prefix)


def add_doctors(conn: psycopg.Connection[Any], clinic: Clinic, count: int) -> None:
    rows = conn.execute(
        """
        INSERT INTO clinic.staff (clinic_id, name, email, role, specialty)
        SELECT %(clinic)s, 'Dr. Bench ' || g, 'doctor' || g || '-' || %(prefix)s || '@bench.example', 'doctor',
               (ARRAY['general', 'dental', 'ortho', 'skin'])[1 + g %% 4]
        FROM generate_series(1, %(n)s) AS g
        RETURNING id
        """,
        {"clinic": clinic.id, "prefix": clinic.prefix.lower(), "n": count},
    ).fetchall()
    clinic.doctor_ids.extend(str(r[0]) for r in rows)


def add_leads(conn: psycopg.Connection[Any], clinic: Clinic, count: int, days: int) -> None:
    """`count` leads spread over the last `days` days, statuses in realistic proportions."""
    query = sql.SQL("""
        INSERT INTO clinic.leads (clinic_id, date_added, name, phone, phone_bidx, age, gender, source, inquiry,
                                  problem, status, created_at, updated_at)
        SELECT %(clinic)s, t::date, 'Lead ' || g, {phone}, md5('bidx' || g), 18 + g %% 60,
               (ARRAY['male', 'female', 'other'])[1 + g %% 3],
               (ARRAY['walk_in', 'website', 'referral', 'instagram', 'google'])[1 + g %% 5],
               'Inquiry ' || g, {problem},
               (ARRAY['new_inquiry', 'cro_queue', 'first_consult', 'follow_up', 'converted', 'converted', 'lost',
                      'not_interested', 'cro_queue', 'follow_up'])[1 + (g * 7) %% 10],
               t, t
        FROM generate_series(1, %(n)s) AS g,
             LATERAL (SELECT now() - make_interval(secs => ((g::bigint * 7919) %% (%(days)s * 86400))::double precision)) AS x(t)
    """).format(
        phone=FAKE_CIPHER.format(salt=sql.Literal("p")), problem=FAKE_CIPHER.format(salt=sql.Literal("x"))
    )
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(query, {"clinic": clinic.id, "n": count, "days": days})


def add_patients(conn: psycopg.Connection[Any], clinic: Clinic, count: int, *, keep_ids: int = 0) -> None:
    """`count` patients: first one per converted lead (linked, registered a few days later), then walk-ins."""
    analyze(conn, "clinic.leads")
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            """
            WITH converted AS (
                SELECT l.id, l.created_at, row_number() OVER (ORDER BY l.created_at) AS g
                FROM clinic.leads AS l
                WHERE l.clinic_id = %(clinic)s AND l.status = 'converted'
                LIMIT %(n)s
            ), numbered AS (
                SELECT g, NULL::uuid AS lead_id, NULL::timestamptz AS lead_at FROM generate_series(1, %(n)s) AS g
            )
            INSERT INTO clinic.patients (clinic_id, uhid, lead_id, name, mobile, email, gender, dob, address, city,
                                         registration_date, created_at, updated_at)
            SELECT %(clinic)s, %(prefix)s || '-' || lpad(n.g::text, 6, '0'), c.id, 'Patient ' || n.g,
                   '+9198' || lpad(n.g::text, 8, '0'), 'patient' || n.g || '@bench.example',
                   (ARRAY['male', 'female', 'other'])[1 + n.g %% 3], date '1960-01-01' + (n.g * 37) %% 20000,
                   n.g || ' Bench Street', 'Pune', coalesce(c.created_at, now())::date,
                   coalesce(c.created_at + make_interval(days => 1 + n.g %% 20), now()),
                   coalesce(c.created_at + make_interval(days => 1 + n.g %% 20), now())
            FROM numbered AS n
            LEFT JOIN converted AS c ON c.g = n.g
            """,
            {"clinic": clinic.id, "prefix": clinic.prefix, "n": count},
        )
        conn.execute(
            """
            INSERT INTO clinic.uhid_counters (clinic_id, last_value) VALUES (%(clinic)s, %(n)s)
            ON CONFLICT (clinic_id) DO UPDATE SET last_value = greatest(clinic.uhid_counters.last_value, %(n)s)
            """,
            {"clinic": clinic.id, "n": count},
        )
    if keep_ids:
        rows = conn.execute(
            "SELECT id FROM clinic.patients WHERE clinic_id = %s ORDER BY uhid LIMIT %s",
            (clinic.id, keep_ids),
        ).fetchall()
        clinic.patient_ids = [str(r[0]) for r in rows]


def add_appointments(
    conn: psycopg.Connection[Any], clinic: Clinic, count: int, *, slots_per_day: int = 16
) -> None:
    """`count` appointments, never overlapping: doctor × day × 30-minute slot, ending a week ahead."""
    # Fresh statistics first: with the new clinic's patients unknown to the planner, the joins below
    # would run as nested loops (hours at a million rows) instead of hash joins.
    analyze(conn, "clinic.staff", "clinic.patients")
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            """
            WITH d AS (
                SELECT id, name, row_number() OVER (ORDER BY id) - 1 AS k
                FROM clinic.staff WHERE clinic_id = %(clinic)s AND role = 'doctor'
            ), p AS (
                SELECT id, name, mobile, email, dob, gender, lead_id, address, city,
                       row_number() OVER (ORDER BY uhid) - 1 AS k
                FROM clinic.patients WHERE clinic_id = %(clinic)s
            ), counts AS (
                SELECT (SELECT count(*) FROM d) AS nd, (SELECT count(*) FROM p) AS np
            ), series AS (
                SELECT g - 1 AS i FROM generate_series(1, %(n)s) AS g
            ), placed AS (
                SELECT s.i, s.i %% c.nd AS dk, (s.i / c.nd) %% %(slots)s AS slot,
                       (s.i / c.nd / %(slots)s)::integer AS day_back, (s.i::bigint * 7919) %% c.np AS pk
                FROM series AS s, counts AS c
            )
            INSERT INTO clinic.appointments (
                clinic_id, patient_id, lead_id, doctor_id, appointment_date, start_time, end_time, type, status,
                source, patient_name_snapshot, patient_phone_snapshot, patient_email_snapshot,
                patient_dob_snapshot, patient_sex_snapshot, patient_age_snapshot, patient_address_snapshot,
                doctor_name_snapshot, created_at, updated_at)
            SELECT %(clinic)s, p.id, p.lead_id, d.id, day, time '08:00' + make_interval(mins => (30 * pl.slot)::integer),
                   time '08:30' + make_interval(mins => (30 * pl.slot)::integer), 'consultation',
                   CASE WHEN day >= current_date THEN 'scheduled'
                        ELSE (ARRAY['completed', 'completed', 'completed', 'no_show', 'cancelled'])[1 + pl.i %% 5]
                   END,
                   'front_desk', p.name, p.mobile, p.email, p.dob, p.gender,
                   extract(year FROM age(day, p.dob))::integer, p.address || ', ' || p.city, d.name,
                   day - 7 + time '09:00', day - 7 + time '09:00'
            FROM placed AS pl
            JOIN d ON d.k = pl.dk
            JOIN p ON p.k = pl.pk,
            LATERAL (SELECT current_date + 7 - pl.day_back) AS x(day)
            """,
            {"clinic": clinic.id, "n": count, "slots": slots_per_day},
        )


def analyze(conn: psycopg.Connection[Any], *tables: str) -> None:
    for table in tables:
        schema, _, name = table.partition(".")
        conn.execute(sql.SQL("ANALYZE {}.{}").format(sql.Identifier(schema), sql.Identifier(name)))


# --- CallMaster ----------------------------------------------------------------------------------


@dataclass
class Owner:
    """A CallMaster user owning a show, with a department and crew users for the element assignments."""

    id: str
    clerk_id: str
    show_id: str
    department_id: str
    crew_ids: list[str]

    def claims(self) -> dict[str, Any]:
        return {"sub": self.clerk_id}


def create_owner(conn: psycopg.Connection[Any], crew: int = 4) -> Owner:
    tag = uuid.uuid4().hex[:10]
    clerk_id = f"user_bench_{tag}"
    owner = factories.add_user(conn, clerk_id, f"owner-{tag}@bench.example")
    crew_ids = [factories.add_crew(conn, owner, f"crew{n}-{tag}@bench.example") for n in range(crew)]
    show = factories.add_show(conn, owner, f"Bench show {tag}")
    return Owner(owner, clerk_id, show, factories.add_department(conn, owner), crew_ids)


def create_script(conn: psycopg.Connection[Any], owner: Owner, elements: int) -> str:
    """A script of `elements` elements (a multiple of 50) with every supporting table populated, built by
    the tests' `fill_script`: groups of ten nested in groups of fifty, equipment, crew and performer
    assignments and conditional rules."""
    script_id = factories.add_script(conn, owner.show_id, f"Script of {elements}")
    factories.fill_script(
        conn,
        script_id,
        elements,
        department_id=owner.department_id,
        crew_ids=(owner.crew_ids[0], owner.crew_ids[1]),
        performer_id=owner.crew_ids[2],
    )
    return script_id
