"""The wear deploy on a sandbox host over SSH, and its periodic check run as cron would.

A physical SSD cannot exist on this VM (its only disk is virtio), so a small
``smartctl`` script stands in for one: it answers ``--scan-open`` with an NVMe
drive and prints a recorded drive's JSON (tests/fixtures/smartctl) whose wear the
test advances between runs. Everything else is real: pyinfra over SSH, the
zipapp run by the host's python3, the cron line's command, the files written.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SandboxFactory
from tests.sandbox import SandboxHost

REPO = Path(__file__).resolve().parent.parent
PYINFRA = Path(sys.executable).parent / "pyinfra"
NVME = REPO / "tests" / "fixtures" / "smartctl" / "SAMSUNG_MZVL21T0HCLR-00B00_24.json"
DAY = 86_400
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
UNIT = 512_000  # bytes per NVMe data unit
CRON_FILE = "/etc/cron.d/gotune-wear"
PROM = "/var/lib/prometheus/node-exporter/gotune_wear.prom"

FAKE_SMARTCTL = """#!/bin/sh
# Test stand-in for smartctl: no physical SSD can exist on this VM (virtio disk only).
case "$*" in
  *--scan-open*) echo '{"devices": [{"name": "/dev/nvme0", "type": "nvme"}]}' ;;
  */dev/nvme0) cat /var/lib/fake-smart/nvme0.json ;;
  *) echo '{"smartctl": {"exit_status": 2}}'; exit 2 ;;
esac
"""


def deploy(box_inventory: Path) -> str:
    out = subprocess.run(
        [str(PYINFRA), "-y", str(box_inventory), "deploys/wear.py"],
        capture_output=True, text=True, timeout=300, cwd=REPO, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr  # pyinfra logs its progress and results on stderr


def grand_total(output: str) -> list[str]:
    """pyinfra's results line: hosts, success (changed), error, no change."""
    line = next(ln for ln in output.splitlines() if ln.strip().startswith("Grand total"))
    return line.split()[2:]


def put(host: SandboxHost, path: str, text: str, mode: str = "644") -> None:
    b64 = base64.b64encode(text.encode()).decode()
    q = shlex.quote(path)
    r = host.run(f"mkdir -p $(dirname {q}) && echo {b64} | base64 -d > {q} && chmod {mode} {q}")
    assert r.returncode == 0, r.stderr


def drive_at(host: SandboxHost, pct: int, units: int) -> None:
    doc = json.loads(NVME.read_text())
    doc["device"]["name"] = doc["device"]["info_name"] = "/dev/nvme0"
    doc["serial_number"] = "S6X1NF0R700123"
    doc["nvme_smart_health_information_log"].update(percentage_used=pct, data_units_written=units)
    put(host, "/var/lib/fake-smart/nvme0.json", json.dumps(doc))


def snapshot(host: SandboxHost) -> str:
    return host.run(f"stat -c '%n %i %Y %a' /opt/gotune/gotune.pyz {CRON_FILE}").stdout


@pytest.mark.sandbox
@pytest.mark.slow
def test_second_deploy_changes_nothing_and_cron_check_projects_a_wearing_drive(
    sandbox: SandboxFactory,
) -> None:
    box = sandbox(1)
    host = box.hosts[0]
    first = deploy(box.inventory)
    assert grand_total(first)[1] != "-"  # the first run changed something
    before = snapshot(host)
    second = deploy(box.inventory)
    assert grand_total(second)[1:3] == ["-", "-"], second  # no success (=changed), no error
    assert snapshot(host) == before

    # Sandbox hosts run no systemd: the cron path.
    cron = host.run(f"cat {CRON_FILE}").stdout
    assert host.run("test -d /run/systemd/system").returncode == 1
    line = next(ln for ln in cron.splitlines() if re.match(r"^\d+ \* \* \* \* root ", ln))
    command = line.split(" root ", 1)[1]
    assert "/opt/gotune/gotune.pyz wear --record" in command

    put(host, "/usr/local/sbin/smartctl", FAKE_SMARTCTL, mode="755")
    # Four daily readings, 81% -> 84%, 200 GB written a day.
    for day in range(4):
        drive_at(host, 81 + day, 2_000_000 + day * 390_625)
        env = f"GOTUNE_WEAR_NOW={T0 + day * DAY}"
        run = host.run(
            f"env -i PATH=/usr/local/sbin:/usr/bin:/bin {env} sh -c {shlex.quote(command)}"
        )
        assert run.returncode == 0, run.stderr

    history = host.run("cat /var/lib/gotune/wear/history.jsonl").stdout.splitlines()
    mine = [json.loads(x) for x in history if "S6X1NF0R700123" in x]
    assert [r["percentage_used"] for r in mine] == [81, 82, 83, 84]

    state = json.loads(host.run("cat /var/lib/gotune/wear/state.json").stdout)
    assert state["status"] == "warn"
    assert state["daily_write_budget_bytes"] == 1 << 30
    assert "/dev/nvme0" in state["reason"] and "84%" in state["reason"]
    assert state["updated"] == T0 + 3 * DAY

    prom = host.run(f"cat {PROM}").stdout
    labels = (
        'device="/dev/nvme0",model="SAMSUNG MZVL21T0HCLR-00B00",serial="S6X1NF0R700123",kind="nvme"'
    )
    assert f"gotune_wear_percentage_used{{{labels}}} 84" in prom
    assert f"gotune_wear_write_rate_bytes_per_day{{{labels}}} {390_625 * UNIT}" in prom
    assert 'gotune_wear_host_status{status="warn"} 1' in prom
    # The virtio disk is listed as unknown, never a crash.
    assert 'device="/dev/vda",model="",serial="",kind="unknown",status="unknown"} 1' in prom
    # 84% rising 1%/day reaches 100% 16 days after the last reading.
    m = re.search(
        rf"gotune_wear_projected_full_timestamp_seconds\{{{re.escape(labels)}\}} (\d+)", prom
    )
    assert m and abs(int(m[1]) - (T0 + 19 * DAY)) < 60
    assert host.run("ls /var/lib/prometheus/node-exporter").stdout.split() == ["gotune_wear.prom"]
