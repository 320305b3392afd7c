"""Settings: the test harness builds them from defaults, never from the developer's shell."""

from __future__ import annotations

import inspect
import re
from dataclasses import fields
from pathlib import Path

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


def test_every_setting_is_one_typed_field_with_its_variable_default_and_docstring() -> None:
    source = inspect.getsource(Settings)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for item in fields(Settings):
        assert "env" in item.metadata, item.name  # declared with env(...): variable (or None) and default
        assert re.search(
            rf'^    {item.name}: [^\n]+(\n        [^\n]+)*(\n    \))?\n    """', source, re.MULTILINE
        ), item.name
        variable = item.metadata["env"]
        assert variable is None or f"`{variable}`" in readme, f"{variable} is not in the README's table"


def test_from_env_parses_each_variable_by_its_type(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KEEL_POOL_MAX_SIZE", "7")
    monkeypatch.setenv("KEEL_OUTBOX_BACKOFF_BASE", "0.5")
    monkeypatch.setenv("KEEL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KEEL_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("KEEL_STATEMENT_TIMEOUT_MS", "")  # empty: the default
    monkeypatch.setenv("KEEL_NOTIFY_TIMEOUT", "90")  # longer than the outbox lease: the lease follows
    settings = Settings.from_env(pool_min_size=1)
    assert (settings.pool_max_size, settings.outbox_backoff_base, settings.data_dir) == (7, 0.5, tmp_path)
    assert (settings.log_level, settings.statement_timeout_ms, settings.pool_min_size) == ("DEBUG", 5000, 1)
    assert settings.outbox_lease_seconds > settings.notify_timeout == 90
    monkeypatch.setenv("KEEL_POOL_MAX_SIZE", "many")
    with pytest.raises(ValueError):
        Settings.from_env()


def test_yes_no_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().accept_v1_ciphertexts is False
    for raw, expected in (("true", True), ("YES", True), ("1", True), ("off", False), ("False", False)):
        monkeypatch.setenv("KEEL_ACCEPT_V1_CIPHERTEXTS", raw)
        assert Settings.from_env().accept_v1_ciphertexts is expected
    monkeypatch.setenv("KEEL_ACCEPT_V1_CIPHERTEXTS", "maybe")
    with pytest.raises(ValueError, match="yes/no"):
        Settings.from_env()
