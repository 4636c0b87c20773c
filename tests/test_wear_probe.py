"""Live mode: drives found in /sys and by ``smartctl --scan-open``, eMMC from sysfs, and
every way reading can fail (no smartctl, no root, a virtual disk, a hung or broken smartctl).

The sysfs trees are built in tmp_path; smartctl is a small shell script standing in
for drives that cannot exist on this VM (it has only a virtio disk).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from gotune.agent.wear import probe as probe_mod
from gotune.agent.wear.emmc import band_to_percent, parse_life_time
from gotune.agent.wear.probe import probe, sysfs_drives
from gotune.agent.wear.status import Thresholds, classify
from gotune.cli import main

CORPUS = Path(__file__).resolve().parent / "fixtures" / "smartctl"


def block(
    root: Path, name: str, files: dict[str, str] | None = None, link: str | None = None
) -> Path:
    """/sys/block/NAME with device/ files; ``link`` makes it a symlink like the kernel's."""
    base = root / "sys" / "block"
    base.mkdir(parents=True, exist_ok=True)
    if link:
        target = root / "sys" / link.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        (base / name).symlink_to(target)
        d = target
    else:
        d = base / name
        d.mkdir()
    (d / "device").mkdir(exist_ok=True)
    for rel, text in (files or {}).items():
        (d / "device" / rel).write_text(text + "\n")
    return d


def emmc_tree(tmp_path: Path, life: str | None, eol: str | None, card: str = "MMC") -> Path:
    files = {"type": card, "name": "DG4016", "serial": "0x1234abcd"}
    if life is not None:
        files["life_time"] = life
    if eol is not None:
        files["pre_eol_info"] = eol
    block(tmp_path, "mmcblk0", files)
    return tmp_path


def read_emmc_status(tmp_path: Path, life: str | None, eol: str | None, card: str = "MMC"):
    recs = probe(sysroot=emmc_tree(tmp_path, life, eol, card), smartctl=None, is_root=False)
    assert len(recs) == 1
    classify(recs[0], Thresholds())
    return recs[0]


def test_life_time_bands_are_upper_bounds() -> None:
    assert parse_life_time("0x01 0x02") == (1, 2)
    assert [band_to_percent(b) for b in (0, 1, 2, 9, 10, 11, 12)] == [
        None,
        10,
        20,
        90,
        100,
        100,
        None,
    ]
    assert parse_life_time("garbage") == (None, None)


def test_emmc_new_is_ok_with_the_worse_of_type_a_and_b(tmp_path: Path) -> None:
    rec = read_emmc_status(tmp_path, "0x01 0x02", "0x01")
    assert (rec.device, rec.kind, rec.model, rec.serial) == (
        "/dev/mmcblk0",
        "emmc",
        "DG4016",
        "0x1234abcd",
    )
    assert rec.percentage_used == 20
    assert rec.wear_status == "ok"


def test_emmc_pre_eol_warning_warns(tmp_path: Path) -> None:
    rec = read_emmc_status(tmp_path, "0x03 0x03", "0x02")
    assert (rec.percentage_used, rec.wear_status) == (30, "warn")
    assert "pre-EOL warning" in rec.reason


def test_emmc_urgent_or_band_nine_is_critical(tmp_path: Path) -> None:
    assert read_emmc_status(tmp_path / "a", "0x09 0x02", "0x01").wear_status == "critical"
    urgent = read_emmc_status(tmp_path / "b", "0x02 0x02", "0x03")
    assert urgent.wear_status == "critical" and "urgent" in urgent.reason


def test_emmc_life_exceeded_reads_as_100_percent(tmp_path: Path) -> None:
    rec = read_emmc_status(tmp_path, "0x0B 0x01", "0x01")
    assert rec.percentage_used == 100 and rec.wear_status == "critical"
    assert "exceeded" in (rec.percentage_used_source or "")


def test_sd_card_and_old_emmc_are_unknown(tmp_path: Path) -> None:
    sd = read_emmc_status(tmp_path / "sd", None, None, card="SD")
    assert sd.wear_status == "unknown" and "SD card" in sd.reason
    old = read_emmc_status(tmp_path / "old", None, None)
    assert old.wear_status == "unknown" and "life_time" in old.reason


def test_drive_list_skips_non_drives_and_folds_nvme_namespaces(tmp_path: Path) -> None:
    for name in ("loop0", "zram0", "dm-0", "md127", "sr0", "mmcblk0boot0", "mmcblk0rpmb",
                 "nvme0n1", "nvme0n2", "nvme1n1", "sda", "mmcblk0"):  # fmt: skip
        block(tmp_path, name)
    devs = [d for d, _ in sysfs_drives(tmp_path)]
    assert devs == ["/dev/mmcblk0", "/dev/nvme0", "/dev/nvme1", "/dev/sda"]


def test_virtio_disk_missing_smartctl_and_no_root_are_unknown_with_reasons(tmp_path: Path) -> None:
    block(
        tmp_path,
        "vda",
        {"vendor": "0x1af4"},
        link="/devices/pci0000:00/0000:00:02.0/virtio1/block/vda",
    )
    block(tmp_path, "sda")
    recs = probe(sysroot=tmp_path, is_root=True, find=lambda: None)  # smartctl not installed
    assert {r.device: r.wear_status for r in recs} == {"/dev/vda": "unknown", "/dev/sda": "unknown"}
    reasons = {r.device: r.reason for r in recs}
    assert "virtual disk (virtio)" in reasons["/dev/vda"]
    assert "smartctl not found" in reasons["/dev/sda"]
    recs = probe(sysroot=tmp_path, smartctl="/bin/true", is_root=False)
    assert "needs root" in {r.device: r.reason for r in recs}["/dev/sda"]


def fake_smartctl(tmp_path: Path, body: str) -> str:
    """A shell script standing in for smartctl (no physical drive can exist here)."""
    path = tmp_path / "smartctl"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_scan_open_devices_are_read_with_their_type_and_garbage_is_a_reason(tmp_path: Path) -> None:
    (tmp_path / "sys" / "block").mkdir(parents=True)
    nvme = CORPUS / "SAMSUNG_MZVL21T0HCLR-00B00_24.json"
    log = tmp_path / "argv.log"
    tool = fake_smartctl(
        tmp_path,
        f"""
echo "$@" >> {log}
case "$*" in
  *--scan-open*) echo '{{"devices": [{{"name": "/dev/nvme1", "type": "nvme"}},
                                    {{"name": "/dev/sdb", "type": "sat; rm -rf /"}},
                                    {{"name": "/dev/sdc", "type": "sat"}}]}}' ;;
  */dev/nvme1) cat {nvme} ;;
  */dev/sdb) echo 'this is not json' ;;
  *) exit 2 ;;
esac
""",
    )
    recs = probe(sysroot=tmp_path, smartctl=tool, is_root=True)
    by_dev = {r.device: r for r in recs}
    assert by_dev["/dev/nvme1"].percentage_used == 16
    assert "no JSON" in by_dev["/dev/sdb"].reason
    assert by_dev["/dev/sdc"].source == "none"
    calls = log.read_text().splitlines()
    assert "--json -a -n standby -d nvme /dev/nvme1" in calls
    # A -d type that is not a plain smartctl type name is dropped, never passed on.
    assert "--json -a -n standby /dev/sdb" in calls


def test_hung_smartctl_times_out_as_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block(tmp_path, "sda")
    tool = fake_smartctl(
        tmp_path, "case \"$*\" in *--scan-open*) echo '{}';; *) exec sleep 30;; esac\n"
    )
    monkeypatch.setattr(probe_mod, "SMARTCTL_TIMEOUT_S", 0.3)
    recs = probe(sysroot=tmp_path, smartctl=tool, is_root=True)
    assert [r.wear_status for r in recs] == ["unknown"]
    assert "timed out" in recs[0].reason


def test_cli_json_lists_devices_from_recorded_files(capsys: pytest.CaptureFixture[str]) -> None:
    files = [
        str(CORPUS / "SAMSUNG_MZVL21T0HCLR-00B00_24.json"),
        str(CORPUS / "ST3500418AS_12.json"),
    ]
    assert main(["wear", "--json", "--smartctl-json", *files]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [d["kind"] for d in out["devices"]] == ["nvme", "hdd"]
    assert out["devices"][0]["wear_status"] == "ok"


def test_cli_table_without_json(capsys: pytest.CaptureFixture[str]) -> None:
    f = CORPUS / "sat-Intel_730_and_DC_S35x0_3610_3700_Series_SSDs-INTEL_SSDSC2BB016T4-sdf.json"
    assert main(["wear", "--smartctl-json", str(f)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["DEVICE", "KIND", "MODEL"]
    assert "85%" in out and "warn" in out


def test_cli_bad_file_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["wear", "--json", "--smartctl-json", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and str(bad) in captured.err
    assert "error" in json.loads(captured.out)
    assert main(["wear", "--smartctl-json", str(tmp_path / "missing.json")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_cli_refuses_warn_above_critical(capsys: pytest.CaptureFixture[str]) -> None:
    f = str(CORPUS / "ST3500418AS_12.json")
    assert (
        main(["wear", "--warn-percent", "95", "--critical-percent", "90", "--smartctl-json", f])
        == 2
    )
    assert "critical percent" in capsys.readouterr().err


def test_wear_runs_without_pyinfra_on_a_target(tmp_path: Path) -> None:
    # The system python3 has no pyinfra: the zipapp's wear command must not need it.
    from gotune.zipapp import build

    pyz = tmp_path / "gotune.pyz"
    build(pyz)
    f = str(CORPUS / "KXG60ZNV512G_TOSHIBA_8.json")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run(
        ["/usr/bin/python3", "-S", str(pyz), "wear", "--json", "--smartctl-json", f],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["devices"][0]["percentage_used"] == 4
