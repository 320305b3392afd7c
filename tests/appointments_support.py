"""Shared pieces of the appointment and outbox tests: a clinic with a doctor and a patient, made the
way a DBA would in psql, and a real webhook receiver on loopback."""

from __future__ import annotations

import base64
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

# A Standard Webhooks secret shared by the dispatcher under test and the receiver that verifies it.
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"keel-outbox-test-secret-32-bytes").decode()


@dataclass(frozen=True)
class ClinicSetup:
    clinic_id: uuid.UUID
    admin_id: uuid.UUID
    doctor_id: uuid.UUID
    patient_id: uuid.UUID


def add_doctor(
    dba: psycopg.Connection[Any], clinic_id: uuid.UUID, name: str, *, role: str = "doctor"
) -> uuid.UUID:
    email = f"{uuid.uuid4().hex[:10]}@clinic.example"
    row = dba.execute(
        "INSERT INTO clinic.staff (clinic_id, name, email, role, specialty) VALUES (%s, %s, %s, %s, 'general')"
        " RETURNING id",
        (clinic_id, name, email, role),
    ).fetchone()
    assert row is not None
    return row[0]


def add_patient(
    dba: psycopg.Connection[Any],
    clinic_id: uuid.UUID,
    name: str,
    *,
    dob: date | None = date(1990, 6, 15),
    mobile: str = "+919800000001",
) -> uuid.UUID:
    row = dba.execute(
        "INSERT INTO clinic.patients (clinic_id, name, mobile, email, gender, dob, address, city, state, postal_code)"
        " VALUES (%s, %s, %s, 'asha@example.org', 'female', %s, '12 MG Road', 'Pune', 'MH', '411001')"
        " RETURNING id",
        (clinic_id, name, mobile, dob),
    ).fetchone()
    assert row is not None
    return row[0]


def make_clinic(
    dba: psycopg.Connection[Any], name: str = "Sunrise", timezone: str = "Asia/Kolkata"
) -> ClinicSetup:
    prefix = "C" + uuid.uuid4().hex[:5].upper()
    row = dba.execute(
        "SELECT clinic_id, admin_id FROM clinic.create_clinic(%s, %s, %s, 'Ann Admin', %s)",
        (name, timezone, prefix, f"admin-{prefix.lower()}@clinic.example"),
    ).fetchone()
    assert row is not None
    clinic_id, admin_id = row
    return ClinicSetup(
        clinic_id=clinic_id,
        admin_id=admin_id,
        doctor_id=add_doctor(dba, clinic_id, "Dr. Meera Rao"),
        patient_id=add_patient(dba, clinic_id, "Asha Kulkarni"),
    )


def book_raw(
    dba: psycopg.Connection[Any],
    setup: ClinicSetup,
    day: date,
    start: str,
    end: str,
    *,
    doctor_id: uuid.UUID | None = None,
    patient_id: uuid.UUID | None = None,
    status: str | None = None,
) -> uuid.UUID:
    """The DBA's minimal INSERT (clinic_id and snapshots come from the trigger)."""
    if status is None:
        row = dba.execute(
            "INSERT INTO clinic.appointments (patient_id, doctor_id, appointment_date, start_time, end_time)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (patient_id or setup.patient_id, doctor_id or setup.doctor_id, day, start, end),
        ).fetchone()
    else:
        row = dba.execute(
            "INSERT INTO clinic.appointments (patient_id, doctor_id, appointment_date, start_time, end_time, status)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (patient_id or setup.patient_id, doctor_id or setup.doctor_id, day, start, end, status),
        ).fetchone()
    assert row is not None
    return row[0]


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    status: int
    received_at: float


@dataclass
class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records every POST.

    `respond(n)` decides the status for the n-th request (0-based), 0 meaning: reset the connection
    without answering; `delay` seconds are slept before answering (a slow receiver).
    """

    respond: Callable[[int], int] = lambda n: 204
    delay: float = 0.0
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/keel"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    n = len(receiver.deliveries)
                    status = receiver.respond(n)
                    receiver.deliveries.append(
                        Delivery(
                            {k.lower(): v for k, v in self.headers.items()}, body, status, time.monotonic()
                        )
                    )
                if receiver.delay:
                    time.sleep(receiver.delay)
                if status == 0:  # SO_LINGER 0: closing sends a TCP RST
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                payload = b"receiver says no" if status >= 400 else b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def snapshot(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)
