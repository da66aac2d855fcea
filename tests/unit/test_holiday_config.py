"""PRIVACY_HUB_HOLIDAYS: whose public holidays move a request's deadline (R-DEAD-01). A
value the holidays package does not know stops the hub from starting, with one line that
names the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from privacy_hub.cli import main
from privacy_hub.config import ConfigError, Settings
from privacy_hub.hub import Hub
from tests.hubs import make_settings


@pytest.mark.parametrize(("raw", "region"), [
    ("DE", "DE"), ("de-by", "DE-BY"), (" ES-PV ", "ES-PV"), ("HU", "HU"), ("", None),
])
def test_the_holiday_region_is_read_and_spelled_canonically(raw: str, region: str | None,
                                                            tmp_path: Path) -> None:
    settings = Settings.from_env({"PRIVACY_HUB_INSTANCE_PATH": str(tmp_path),
                                  "PRIVACY_HUB_HOLIDAYS": raw})
    assert settings.holidays == region


def test_without_the_variable_only_weekends_are_days_off(tmp_path: Path) -> None:
    assert Settings.from_env({"PRIVACY_HUB_INSTANCE_PATH": str(tmp_path)}).holidays is None


@pytest.mark.parametrize("raw", ["XX", "DE-ZZ", "Bavaria", "DE-BY-X", "1", "DE BY"])
def test_an_unknown_region_is_refused_naming_the_variable(raw: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^PRIVACY_HUB_HOLIDAYS: ") as refused:
        Settings.from_env({"PRIVACY_HUB_INSTANCE_PATH": str(tmp_path),
                           "PRIVACY_HUB_HOLIDAYS": raw})
    assert "\n" not in str(refused.value)


def test_the_hub_refuses_to_open_with_an_unknown_region(tmp_path: Path) -> None:
    """Settings built in code (not from the environment) are checked when the hub opens."""
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'hub.db'}", holidays="XX")
    with pytest.raises(ConfigError, match=r"^PRIVACY_HUB_HOLIDAYS: "):
        Hub.open(settings)


@pytest.mark.parametrize("command", [["serve"], ["worker", "--once"], ["db", "upgrade"]])
def test_the_commands_stop_with_one_line_naming_the_variable(command: list[str],
                                                             tmp_path: Path) -> None:
    result = CliRunner().invoke(main, command, env={
        "PRIVACY_HUB_INSTANCE_PATH": str(tmp_path / "instance"),
        "PRIVACY_HUB_HOLIDAYS": "Atlantis"})
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: PRIVACY_HUB_HOLIDAYS: ")
    assert "Traceback" not in result.output and not (tmp_path / "instance").exists()
