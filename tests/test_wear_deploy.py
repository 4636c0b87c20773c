"""What the wear deploy writes: the check's command line from settings, and the
systemd units and cron line it renders (the sandbox test covers the cron path live;
sandbox hosts have no systemd, so the units are checked as rendered text here).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import gotune
from gotune.deploys.wear import check_command, cron_minute
from gotune.errors import GotuneError
from gotune.operations.render import render
from gotune.settings import validate_host_data

TEMPLATES = Path(gotune.__file__).parent / "templates"


def test_command_carries_the_settings() -> None:
    settings = validate_host_data(
        {"gotune_wear_warn_percent": 70, "gotune_wear_critical_percent": 85,
         "gotune_mirror_write_budget_gib": 0.5, "gotune_wear_media_errors_critical": 0},
        "sbx1",
    )  # fmt: skip
    argv = shlex.split(check_command("/usr/bin/python3", settings))
    assert argv[:5] == ["/usr/bin/python3", "/opt/gotune/gotune.pyz", "wear", "--record",
                        "--state-dir"]  # fmt: skip
    flags = dict(zip(argv[4::2], argv[5::2], strict=True))
    assert flags["--warn-percent"] == "70" and flags["--critical-percent"] == "85"
    assert flags["--write-budget"] == str(512 << 20)
    assert flags["--media-errors-critical"] == "0"
    assert flags["--textfile-dir"] == "/var/lib/prometheus/node-exporter"


def test_no_textfile_dir_means_no_metrics_flag() -> None:
    settings = validate_host_data({"gotune_wear_textfile_dir": ""}, "h")
    assert "--textfile-dir" not in check_command("/usr/bin/python3", settings)


def test_warn_above_critical_is_refused_with_the_settings_before_any_host_is_touched() -> None:
    with pytest.raises(GotuneError, match=r"host h: wear settings: warn percent \(95\)"):
        validate_host_data({"gotune_wear_warn_percent": 95, "gotune_wear_critical_percent": 90},
                           "h")  # fmt: skip


def test_hostile_textfile_dir_is_refused_by_settings() -> None:
    with pytest.raises(GotuneError, match="gotune_wear_textfile_dir"):
        validate_host_data({"gotune_wear_textfile_dir": "/tmp/x; rm -rf / %"}, "h")


def test_units_and_cron_line_render() -> None:
    cmd = check_command("/usr/bin/python3", validate_host_data({}, "h"))
    service = render("wear-check.service.j2", command=cmd)
    assert f"ExecStart={cmd}\n" in service and "Type=oneshot" in service
    timer = render("wear-check.timer.j2", schedule="hourly", random_delay="10min")
    assert "OnCalendar=hourly" in timer and "Persistent=true" in timer
    assert "WantedBy=timers.target" in timer
    cron = render("wear-check.cron.j2", minute=cron_minute("sbx1"), command=cmd)
    line = cron.splitlines()[-1]
    assert re.match(r"^([0-9]|[1-5][0-9]) \* \* \* \* root /usr/bin/python3 ", line)
    assert "%" not in line  # cron would turn it into a newline


def test_cron_minute_is_stable_and_spread() -> None:
    assert cron_minute("web1") == cron_minute("web1")
    assert len({cron_minute(f"host{i}") for i in range(40)}) > 15


def test_the_wear_components_templates_are_named_after_it() -> None:
    names = {p.name for p in TEMPLATES.glob("wear-*.j2")}
    assert names == {"wear-check.service.j2", "wear-check.timer.j2", "wear-check.cron.j2"}
