"""Fixtures shared by several test areas, registered for every test through `pytest_plugins` in
tests/conftest.py (request them by name; never import them). Records come from `tests.factories`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from api.settings import Settings
from tests.assistant_api import StaffMember, create_clinic_staff, running_worker
from tests.factories import Bearer, Clinic, Dba, create_clinic
from tests.llm_server import LLMServer


@dataclass
class ClinicAdmin:
    """A clinic (ids as the API writes them) and a bearer header of its admin."""

    id: str
    admin_id: str
    headers: dict[str, str]
    name: str

    def as_role(self, bearer: Bearer, role: str, sub: str | None = None) -> dict[str, str]:
        return bearer(sub or self.admin_id, clinic_id=self.id, role=role)


def clinic_admin(dba: Dba, bearer: Bearer, name: str, prefix: str) -> ClinicAdmin:
    admin = create_clinic_staff(dba, bearer, name, prefix)
    return ClinicAdmin(admin.clinic_id, admin.staff_id, admin.headers, name)


@pytest.fixture
def clinic_a(dba: Dba, bearer: Bearer) -> ClinicAdmin:
    """Clinic "Alpha" (UHID prefix ALP) and its admin's header."""
    return clinic_admin(dba, bearer, "Alpha", "ALP")


@pytest.fixture
def clinic_b(dba: Dba, bearer: Bearer) -> ClinicAdmin:
    """Clinic "Beta" (UHID prefix BET), another tenant."""
    return clinic_admin(dba, bearer, "Beta", "BET")


@pytest.fixture
def clinic_setup(dba: Dba) -> Clinic:
    """A clinic (Asia/Kolkata) with one doctor and one patient, made as a DBA would."""
    return create_clinic(dba, doctors=1, patients=1)


@pytest.fixture
def llm() -> Iterator[LLMServer]:
    """The loopback OpenAI-compatible LLM, fresh per test."""
    server = LLMServer().start()
    yield server
    server.stop()


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[asyncio.Task[None]]:
    """The assistant worker running as a task for the test."""
    async with running_worker(settings) as task:
        yield task


@pytest.fixture
def staff(dba: Dba, bearer: Bearer) -> StaffMember:
    """The admin of clinic "Alpha", with a token."""
    return create_clinic_staff(dba, bearer, "Alpha", "ALP")
