"""The console in a real browser: Debian's Chromium driven by Playwright (no browser download) against a
real `keel serve` subprocess on a freshly migrated database, with the loopback LLM.

Sign in, read the dashboard (figures equal the API's), book and cancel from Today and see the API's 409,
chat and watch the reply stream, retry a failed outbox event; axe-core finds no serious or critical
violation on any page; first paint and transfer size are measured from a cold cache.
KEEL_CONSOLE_SCREENSHOTS=1 also writes docs/console/*.png (desktop and 360 px wide).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect, sync_playwright

from api.auth import TokenVerifier
from api.settings import Settings
from tests.conftest import TEST_JWT_SECRET
from tests.database import create_database, drop_database, url_for_database
from tests.factories import Clinic, add_appointment, add_lead, add_patient, add_staff, create_clinic
from tests.llm_server import Behavior, LLMServer
from tests.pg_servers import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "console"
PAGES = ("tower", "today", "assistant", "operations")

# Generous: CI shares two cores with everything else, and a refresh or a cold page may take seconds there.
expect.set_options(timeout=20_000)

if CHROMIUM is None:  # CI installs it (.ci/run); say so instead of skipping silently
    raise RuntimeError("tests/test_console_browser.py needs Debian's chromium: apt-get install chromium")


class Console:
    """The running server, its seeded clinic, and helpers shared by the tests of this module."""

    def __init__(self, base: str, dba: psycopg.Connection[Any], clinic: Clinic, llm: LLMServer) -> None:
        self.base, self.dba, self.clinic, self.llm = base, dba, clinic, llm
        verifier = TokenVerifier(Settings(jwt_secret=TEST_JWT_SECRET, database_url="unused"))
        self.admin_token = verifier.mint(
            {"sub": str(clinic.admin_id), "clinic_id": str(clinic.id), "role": "admin"},
            ttl_seconds=3600,
        )
        self.headers = {"Authorization": f"Bearer {self.admin_token}"}
        self.csp_violations: list[str] = []

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.base + path, headers=self.headers, timeout=10, **kwargs)

    def open(self, browser: Browser, hash_: str = "#/tower", width: int = 1280) -> Page:
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        # Chromium reports what the Content-Security-Policy blocked as console errors.
        page.on(
            "console",
            lambda m: self.csp_violations.append(m.text) if "Content Security Policy" in m.text else None,
        )
        # The console link: the token rides in the fragment, which the browser never sends to the server.
        page.goto(f"{self.base}/console/#token={self.admin_token}")
        expect(page.get_by_role("heading", level=1)).to_have_text("Control tower")
        if hash_ != "#/tower":
            page.goto(f"{self.base}/console/{hash_}")
        return page


@pytest.fixture(scope="module")
def console(
    pg_admin_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    name = create_database(pg_admin_url, template_db)
    url = url_for_database(pg_admin_url, name)
    llm = LLMServer().start()
    llm.default = Behavior(chunk_delay=0.08)
    dba = psycopg.connect(url, autocommit=True)
    clinic = create_clinic(dba, "Sunrise", "UTC", doctors=1, patients=1)
    add_staff(dba, clinic.id, "Dr. Vikram Shah")
    add_patient(dba, clinic.id, "Ravi Menon", mobile="+919800000002")
    today = datetime.now(UTC).date()
    for i, status in enumerate(
        ["new_inquiry", "cro_queue", "first_consult", "follow_up", "converted", "lost"]
    ):
        add_lead(dba, clinic.id, date_added=today - timedelta(days=i % 3), status=status, name=f"Lead {i}")
    add_appointment(dba, clinic, today, "09:00", "09:30")
    add_appointment(dba, clinic, today, "11:00", "11:45", status="checked_in")
    dba.execute("CALL clinic.refresh_control_tower()")

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "KEEL_", "OPENAI_"))}
    env.update(
        DATABASE_URL=url,
        KEEL_DATA_DIR=str(tmp_path_factory.mktemp("keel-data")),
        KEEL_JWT_SECRET=TEST_JWT_SECRET,
        KEEL_REFRESH_INTERVAL="0",
        KEEL_ASSISTANT_RETRY_BASE="0.05",
        KEEL_ASSISTANT_POLL_INTERVAL="0.3",
        KEEL_OUTBOX_POLL_INTERVAL="0.2",
        OPENAI_BASE_URL=llm.url,
        OPENAI_API_KEY="test-key",
        KEEL_LOG_LEVEL="WARNING",
    )
    log = open(tmp_path_factory.mktemp("serve") / "serve.log", "w+")  # noqa: SIM115 — closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise AssertionError(f"keel serve exited early: {log.read()}")
            try:
                httpx.get(f"{base}/api/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise AssertionError("keel serve did not come up") from None
                time.sleep(0.2)
        yield Console(base, dba, clinic, llm)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
        dba.close()
        llm.stop()
        drop_database(pg_admin_url, name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield instance
        instance.close()


@pytest.fixture(autouse=True)
def nothing_blocked_by_the_content_security_policy(console: Console) -> Iterator[None]:
    """Every page of every test works under the console's CSP: nothing it needs is refused."""
    console.csp_violations.clear()
    yield
    assert console.csp_violations == []


def test_sign_in_by_pasting_a_token_and_by_console_link(console: Console, browser: Browser) -> None:
    page = browser.new_page()
    page.goto(f"{console.base}/")
    expect(page.get_by_role("heading", name="Sign in with a bearer token")).to_be_visible()
    page.get_by_label("Bearer token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("refused")
    page.get_by_label("Bearer token").fill(console.admin_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Control tower")
    page.close()

    linked = console.open(browser)
    assert "token=" not in linked.url  # the link's fragment is dropped from the address bar and history
    linked.get_by_role("button", name="Sign out").click()
    expect(linked.get_by_role("heading", name="Sign in with a bearer token")).to_be_visible()
    linked.context.close()


def test_dashboard_figures_equal_the_api(console: Console, browser: Browser) -> None:
    summary = console.api("GET", "/api/control-tower/summary").json()
    page = console.open(browser)
    for key in ("conversion_rate", "cro_success_rate", "churn_rate"):
        expect(page.locator(f'[data-kpi="{key}"] dd')).to_have_text(f"{summary['kpis'][key] * 100:.1f} %")
    assert summary["funnel"][0]["count"] == 6  # the seeded leads, so the comparison is not of zeros
    for stage in summary["funnel"]:
        expect(page.locator(f'[data-stage="{stage["stage"]}"]')).to_contain_text(f": {stage['count']}")
    expect(
        page.get_by_role("heading", name=f"Appointments today ({summary['appointments_today']['total']})")
    ).to_be_visible()
    definition = page.locator('[data-kpi="churn_rate"] abbr').get_attribute("title")
    assert definition and "lost or not interested" in definition
    doctors = console.api("GET", "/api/control-tower/doctors").json()["doctors"]
    busiest = doctors[0]
    expect(page.get_by_role("row", name=busiest["name"]).first).to_contain_text(str(busiest["appointments"]))
    daily = console.api("GET", "/api/control-tower/daily").json()
    expect(page.locator("#daily-totals")).to_contain_text(f"{daily['totals']['leads_created']} leads")
    page.get_by_role("button", name="Refresh now").click()
    expect(page.get_by_role("status")).to_contain_text("Refresh ok")
    page.context.close()


def test_book_see_the_409_and_cancel_from_today(console: Console, browser: Browser) -> None:
    page = console.open(browser, "#/today")
    expect(page.get_by_role("heading", name="2 appointments", exact=False)).to_be_visible()
    page.get_by_label("Patient").select_option(
        label=next(
            o
            for o in page.get_by_label("Patient").locator("option").all_inner_texts()
            if o.startswith("Ravi Menon")
        )
    )
    page.get_by_label("Doctor").select_option(label="Dr. Meera Rao")
    page.get_by_label("Start").fill("14:00")
    page.get_by_label("End").fill("14:30")
    page.get_by_role("button", name="Book", exact=True).click()
    expect(page.get_by_role("heading", name="3 appointments", exact=False)).to_be_visible()

    # The same slot again: the API's 409 message is shown as it is.
    page.get_by_role("button", name="Book", exact=True).click()
    alert = page.locator("#today-error")
    expect(alert).to_contain_text("already booked")
    body = {
        "patient_id": str(console.clinic.patient_id),
        "doctor_id": str(console.clinic.doctor_id),
        "appointment_date": datetime.now(UTC).date().isoformat(),
        "start_time": "14:00",
        "end_time": "14:30",
    }
    conflict = console.api("POST", "/api/appointments", json=body)
    assert conflict.status_code == 409
    assert alert.inner_text() == conflict.json()["detail"]

    page.once("dialog", lambda dialog: dialog.accept("Patient called to cancel"))
    booked = page.get_by_role("group", name="Ravi Menon, 14:00–14:30, scheduled")
    booked.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("group", name="Ravi Menon, 14:00–14:30, cancelled")).to_be_visible()
    status = console.dba.execute(
        "SELECT status, cancel_reason FROM clinic.appointments WHERE start_time = '14:00'"
    ).fetchone()
    assert status == ("cancelled", "Patient called to cancel")
    page.context.close()


def test_chat_streams_the_reply_and_resumes_after_reload(console: Console, browser: Browser) -> None:
    page = console.open(browser, "#/assistant")
    page.get_by_label("Message", exact=True).fill("How many patients came today?")
    page.get_by_role("button", name="Send").click()
    final = "You asked: How many patients came today? Here is a streamed answer in several small pieces."
    reply = page.locator(".msg.assistant .text").last
    seen: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = reply.inner_text()
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        if text == final:
            break
        time.sleep(0.03)
    assert seen[-1] == final
    assert any(0 < len(partial) < len(final) for partial in seen), seen  # text arrived piece by piece
    expect(page.locator(".msg.assistant .state").last).to_have_text("")

    page.reload()
    expect(page.locator(".msg.user .text").last).to_have_text("How many patients came today?")
    expect(page.locator(".msg.assistant .text").last).to_have_text(final)
    page.context.close()


def test_chat_failure_is_shown_as_a_state(console: Console, browser: Browser) -> None:
    console.llm.plan(*[Behavior(status=400)] * 6)
    page = console.open(browser, "#/assistant")
    page.get_by_label("Message", exact=True).fill("This one will fail")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".msg.assistant .state.failed").last).to_contain_text("failed: ", timeout=20_000)
    page.context.close()


def test_retry_a_failed_outbox_event(console: Console, browser: Browser) -> None:
    deadline = time.monotonic() + 15  # the dispatcher delivers the bookings' events first
    while console.dba.execute("SELECT count(*) FROM keel.outbox WHERE delivered_at IS NULL").fetchone()[0]:
        assert time.monotonic() < deadline, "the outbox never drained"
        time.sleep(0.2)
    event_id = uuid.uuid4()
    console.dba.execute(
        "INSERT INTO keel.outbox (id, topic, payload, attempts, failed_at, last_error, last_status)"
        " VALUES (%s, 'appointment.booked', %s, 12, now(), 'receiver answered 502 Bad Gateway', 502)",
        (event_id, psycopg.types.json.Jsonb({"clinic_id": str(console.clinic.id)})),
    )
    page = console.open(browser, "#/operations")
    expect(page.locator("#outbox-failed dd")).to_have_text("1")
    expect(page.get_by_role("cell", name="receiver answered 502 Bad Gateway")).to_be_visible()
    page.get_by_role("button", name=f"Retry appointment.booked event {event_id}").click()
    expect(page.get_by_role("status")).to_contain_text("queued again")
    expect(page.locator("#outbox-failed dd")).to_have_text("0")
    deadline = time.monotonic() + 15
    while console.dba.execute(
        "SELECT delivered_at IS NULL FROM keel.outbox WHERE id = %s", (event_id,)
    ).fetchone()[0]:
        assert time.monotonic() < deadline, "the retried event was not delivered"
        time.sleep(0.2)
    page.context.close()


@pytest.mark.parametrize("name", PAGES)
def test_no_serious_accessibility_violations(console: Console, browser: Browser, name: str) -> None:
    page = console.open(browser, f"#/{name}")
    expect(page.locator("main .muted", has_text="Loading…")).to_have_count(0)
    violations = Axe().run(page).response["violations"]
    serious = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]])
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == []
    if os.environ.get("KEEL_CONSOLE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{name}-desktop.png", full_page=True)
        page.set_viewport_size({"width": 360, "height": 780})
        page.wait_for_timeout(200)
        page.screenshot(path=SCREENSHOTS / f"{name}-phone.png", full_page=True)
    page.context.close()


def test_first_paint_and_size_from_a_cold_cache(console: Console, browser: Browser) -> None:
    context = browser.new_context()  # a new context has an empty cache
    page = context.new_page()
    page.goto(f"{console.base}/console/#token={console.admin_token}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Control tower")
    page.wait_for_load_state("networkidle")
    paint = page.evaluate(
        "performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint')?.startTime"
    )
    transferred = page.evaluate(
        "performance.getEntriesByType('navigation')[0].transferSize"
        " + performance.getEntriesByType('resource').reduce((n, e) => n + e.transferSize, 0)"
    )
    print(f"console cold load: first contentful paint {paint:.0f} ms, {transferred} bytes transferred")
    assert paint is not None and paint < 1000
    assert 0 < transferred < 500_000
    context.close()
