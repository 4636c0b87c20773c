"""The periodic check (``gotune wear --record``): history, write rate, projection,
node_exporter metrics and the state file the mirror reads — driven through the CLI
with a set clock (GOTUNE_WEAR_NOW) over recorded drive output.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from gotune.agent.prom import escape_label
from gotune.agent.wear import history
from gotune.agent.wear.history import Reading
from gotune.agent.wear.metrics import render
from gotune.agent.wear.state import WearState, read_wear_state, write_wear_state
from gotune.cli import main

CORPUS = Path(__file__).resolve().parent / "fixtures" / "smartctl"
NVME = CORPUS / "SAMSUNG_MZVL21T0HCLR-00B00_24.json"
DAY = 86_400
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
UNIT = 512_000  # bytes per NVMe data unit


def nvme_reading(tmp_path: Path, day: int, pct: int, units: int, serial: str = "S6X1NF0R") -> Path:
    doc = json.loads(NVME.read_text())
    doc["serial_number"] = serial
    log = doc["nvme_smart_health_information_log"]
    log["percentage_used"] = pct
    log["data_units_written"] = units
    path = tmp_path / f"reading-{day}-{serial}.json"
    path.write_text(json.dumps(doc))
    return path


def record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    now: float, files: list[Path], *extra: str,
) -> dict[str, Any]:  # fmt: skip
    monkeypatch.setenv("GOTUNE_WEAR_NOW", str(now))
    argv = ["wear", "--record", "--json", "--state-dir", str(tmp_path / "state"),
            "--textfile-dir", str(tmp_path / "textfile"), *extra,
            "--smartctl-json", *map(str, files)]  # fmt: skip
    assert main(argv) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_six_daily_readings_give_rate_projection_metrics_and_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # One percent and 390625 data units (200 GB) a day: 76% on day 0 ... 81% on day 5.
    out: dict[str, Any] = {}
    for day in range(6):
        f = nvme_reading(tmp_path, day, 76 + day, 1_000_000 + day * 390_625)
        out = record(tmp_path, monkeypatch, capsys, T0 + day * DAY, [f], "--write-budget", "512M")
    lines = (tmp_path / "state" / "history.jsonl").read_text().splitlines()
    assert len(lines) == 6
    dev = out["devices"][0]
    assert dev["write_rate_bytes_per_day"] == 390_625 * UNIT == 200_000_000_000
    # 81% now, +1%/day: 100% in 19 days.
    expected = (datetime.fromtimestamp(T0, timezone.utc) + timedelta(days=5 + 19)).date()
    assert dev["projected_full_date"] == expected.isoformat() == "2023-12-08"
    assert dev["wear_status"] == "warn"

    state = read_wear_state(tmp_path / "state" / "state.json")
    assert state.status == "warn"
    assert state.daily_write_budget_bytes == 512 << 20
    assert state.updated == T0 + 5 * DAY
    assert "81% of rated endurance used" in state.reason

    prom = (tmp_path / "textfile" / "gotune_wear.prom").read_text()
    labels = 'device="/dev/nvme1",model="SAMSUNG MZVL21T0HCLR-00B00",serial="S6X1NF0R",kind="nvme"'
    assert f"gotune_wear_percentage_used{{{labels}}} 81" in prom
    assert f'gotune_wear_status{{{labels},status="warn"}} 1' in prom
    assert f'gotune_wear_status{{{labels},status="ok"}} 0' in prom
    assert f"gotune_wear_write_rate_bytes_per_day{{{labels}}} 200000000000" in prom
    assert f"gotune_wear_bytes_written_total{{{labels}}} {(1_000_000 + 5 * 390_625) * UNIT}" in prom
    assert 'gotune_wear_host_status{status="warn"} 1' in prom
    assert f"gotune_wear_daily_write_budget_bytes {512 << 20}" in prom
    full_ts = int(datetime(2023, 12, 8, tzinfo=timezone.utc).timestamp())
    m = re.search(r"gotune_wear_projected_full_timestamp_seconds\{[^}]*\} (\d+)", prom)
    assert m and full_ts <= int(m[1]) < full_ts + DAY
    assert_well_formed_exposition(prom)
    assert not [p for p in (tmp_path / "textfile").iterdir() if p.name != "gotune_wear.prom"]


def assert_well_formed_exposition(text: str) -> None:
    """Every sample belongs to a family declared once with HELP then TYPE."""
    declared: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in declared
            declared[name] = ""
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("gauge", "counter") and declared[name] == ""
            declared[name] = kind
        else:
            m = re.match(r'^([a-z_]+)(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+)$', line)
            assert m, line
            assert declared.get(m[1]), line


def test_critical_drive_sets_budget_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = record(tmp_path, monkeypatch, capsys, T0, [nvme_reading(tmp_path, 0, 93, 10)])
    assert out["state"]["status"] == "critical"
    assert out["state"]["daily_write_budget_bytes"] == 0
    assert out["devices"][0]["projected_full_date"] is None  # one reading: no trend
    assert "fewer than two" in out["devices"][0]["projection_reason"]


def test_healthy_host_has_no_budget_and_worst_drive_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = nvme_reading(tmp_path, 0, 3, 10, serial="A")
    hdd = CORPUS / "ST3500418AS_12.json"
    out = record(tmp_path, monkeypatch, capsys, T0, [ok, hdd])
    assert out["state"]["status"] == "ok" and out["state"]["daily_write_budget_bytes"] is None
    warn = nvme_reading(tmp_path, 1, 85, 20, serial="B")
    out = record(tmp_path, monkeypatch, capsys, T0 + DAY, [ok, warn, hdd])
    assert out["state"]["status"] == "warn"
    assert out["state"]["daily_write_budget_bytes"] == 1 << 30  # the default budget


def test_drive_swap_starts_a_new_series(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    record(tmp_path, monkeypatch, capsys, T0, [nvme_reading(tmp_path, 0, 40, 9_000_000, "OLD")])
    out = record(tmp_path, monkeypatch, capsys, T0 + DAY, [nvme_reading(tmp_path, 1, 0, 10, "NEW")])
    dev = out["devices"][0]
    # The new drive's counters are far below the old one's: no negative rate, no trend yet.
    assert dev["write_rate_bytes_per_day"] is None
    assert dev["projected_full_date"] is None


def test_write_rate_skips_a_counter_reset() -> None:
    key = "m|s"
    readings = [
        Reading(T0, key, None, 100), Reading(T0 + DAY, key, None, 300),
        Reading(T0 + 2 * DAY, key, None, 50),  # firmware reset the counter
        Reading(T0 + 3 * DAY, key, None, 250),
    ]  # fmt: skip
    rate, why = history.write_rate(readings, T0 + 3 * DAY)
    assert rate == pytest.approx(200.0)  # (200 + 200) bytes over the 2 days that count
    assert "1 counter reset" in why


def test_projection_needs_an_upward_trend() -> None:
    flat = [Reading(T0 + d * DAY, "k", 5, None) for d in range(10)]
    assert history.projection(flat, T0 + 9 * DAY)[0] is None
    assert "no upward trend" in history.projection(flat, T0 + 9 * DAY)[2]
    done = [Reading(T0, "k", 99, None), Reading(T0 + 2 * DAY, "k", 101, None)]
    assert history.projection(done, T0 + 2 * DAY)[1] == 0.0


def test_torn_history_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text('{"t": 1, "key": "a", "bytes_written": 5}\n{"t": 2, "key": "a", "byt\n')
    assert [r.t for r in history.load(path)] == [1.0]


def test_old_history_is_pruned(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    old = T0 - (history.HISTORY_KEEP_DAYS + 1) * DAY
    history.append(path, [{"t": old, "key": "a"}], old)
    history.append(path, [{"t": T0, "key": "a"}], T0)
    assert [r.t for r in history.load(path)] == [float(T0)]


def test_bad_clock_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GOTUNE_WEAR_NOW", "yesterday")
    argv = ["wear", "--record", "--state-dir", str(tmp_path), "--smartctl-json", str(NVME)]
    assert main(argv) == 2
    assert "GOTUNE_WEAR_NOW" in capsys.readouterr().err


def test_unwritable_state_dir_is_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("GOTUNE_WEAR_NOW", str(T0))
    argv = ["wear", "--record", "--state-dir", str(blocker / "sub"), "--smartctl-json", str(NVME)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("gotune: wear check cannot write") and err.count("\n") == 1


def test_state_file_round_trip_and_garbage_reads_unknown(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert read_wear_state(path).status == "unknown"
    write_wear_state(WearState("warn", "why", 123, 5.0), path)
    assert read_wear_state(path) == WearState("warn", "why", 123, 5.0)
    for junk in (
        "{",
        "[]",
        '{"status": "fine"}',
        '{"status": "ok", "daily_write_budget_bytes": -1}',
    ):
        path.write_text(junk)
        assert read_wear_state(path).status == "unknown"


def test_hostile_label_values_are_escaped() -> None:
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    dev = {"device": "/dev/x", "model": 'evil"} 1\nfake_metric 2', "serial": "s", "kind": "ssd",
           "wear_status": "ok", "percentage_used": 1}  # fmt: skip
    text = render([dev], WearState("ok", "", None, 1.0))
    assert "\nfake_metric" not in text
    assert_well_formed_exposition(text)


def test_plain_wear_shows_rate_and_projection_from_the_timers_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for day in range(3):
        f = nvme_reading(tmp_path, day, 50 + day, 1_000 + day * 1_000)
        record(tmp_path, monkeypatch, capsys, T0 + day * DAY, [f])
    argv = ["wear", "--state-dir", str(tmp_path / "state"), "--smartctl-json", str(f)]
    assert main([*argv, "--json"]) == 0
    dev = json.loads(capsys.readouterr().out)["devices"][0]
    assert dev["write_rate_bytes_per_day"] == 1_000 * UNIT
    assert dev["projected_full_date"] == "2024-01-03"  # 52% on Nov 16, +1%/day: 48 days on
    lines = (tmp_path / "state" / "history.jsonl").read_text().splitlines()
    assert len(lines) == 3  # looking does not record
    assert main(argv) == 0
    assert "RATE/DAY" in capsys.readouterr().out
