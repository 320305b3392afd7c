"""Settings: the test harness builds them from defaults, never from the developer's shell."""

from __future__ import annotations

import pytest

from api.settings import Settings

SHELL = {
    "KEEL_STATEMENT_TIMEOUT_MS": "1",
    "KEEL_POOL_TIMEOUT": "0.001",
    "KEEL_ASSISTANT_MODEL": "from-the-shell",
}


@pytest.fixture
def shell_exports(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's shell with `KEEL_*` variables exported (requested before `settings` is built)."""
    for name, value in SHELL.items():
        monkeypatch.setenv(name, value)


def test_settings_fixture_ignores_keel_variables_in_the_shell(
    shell_exports: None, settings: Settings
) -> None:
    assert (settings.statement_timeout_ms, settings.pool_timeout, settings.assistant_model) == (
        5000,
        5.0,
        "gpt-4o-mini",
    )
    # The same variables do reach the settings a deployment reads, so the fixture really is shielded.
    from_shell = Settings.from_env()
    assert (from_shell.statement_timeout_ms, from_shell.pool_timeout, from_shell.assistant_model) == (
        1,
        0.001,
        "from-the-shell",
    )
