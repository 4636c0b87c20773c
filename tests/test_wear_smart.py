"""Parsing recorded ``smartctl --json`` output of real drives (tests/fixtures/smartctl).

The expectations in the hand-checked tests were read by eye from the JSON files,
not computed by the code under test.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gotune.agent.wear.probe import read_smartctl
from gotune.agent.wear.record import KINDS, DeviceWear
from gotune.agent.wear.smart import parse_smartctl
from gotune.agent.wear.state import STATUSES
from gotune.agent.wear.status import Thresholds, classify

CORPUS = Path(__file__).resolve().parent / "fixtures" / "smartctl"
FILES = sorted(CORPUS.glob("*.json"))
GIB = 1 << 30
MIB32 = 32 << 20


def read(name: str, th: Thresholds | None = None) -> DeviceWear:
    rec = parse_smartctl(json.loads((CORPUS / name).read_text()), name)
    classify(rec, th or Thresholds())
    return rec


def test_corpus_is_there() -> None:
    # The fixture set: NVMe, SATA SSD, SATA HDD and SAS drives.
    assert len(FILES) >= 80


@pytest.mark.parametrize("path", FILES, ids=[p.stem[:60] for p in FILES])
def test_every_fixture_yields_a_well_formed_record(path: Path) -> None:
    rec = parse_smartctl(json.loads(path.read_text()), path.name)
    classify(rec, Thresholds())
    data = rec.to_json()
    assert data["device"].startswith("/dev/")
    assert data["kind"] in KINDS and data["kind"] != "unknown"
    assert data["wear_status"] in STATUSES
    assert data["reason"]
    assert data["model"]
    assert data["smart_available"] is True
    assert isinstance(data["health_passed"], bool)
    if data["kind"] == "hdd":
        assert data["percentage_used"] is None
    if data["kind"] in ("nvme", "ssd"):
        # Every SSD in the corpus reports a wear indicator gotune knows by name.
        assert isinstance(data["percentage_used"], int), data
        assert data["percentage_used_source"]
    bw = data["bytes_written"]
    assert (bw is None) == (data["bytes_written_rule"] is None)
    assert bw is None or (isinstance(bw, int) and bw >= 0)
    json.dumps(data)  # serialisable as is


def test_nvme_samsung_client_drive_by_hand() -> None:
    # "percentage_used": 16, "data_units_written": 118137665, "available_spare": 100,
    # "available_spare_threshold": 10, "media_errors": 0, smart_status passed.
    rec = read("SAMSUNG_MZVL21T0HCLR-00B00_24.json")
    assert (rec.device, rec.kind, rec.model) == ("/dev/nvme1", "nvme", "SAMSUNG MZVL21T0HCLR-00B00")
    assert rec.percentage_used == 16
    assert rec.bytes_written == 118137665 * 512000 == 60_486_484_480_000
    assert (rec.available_spare, rec.available_spare_threshold, rec.media_errors) == (100, 10, 0)
    assert rec.health_passed is True
    assert rec.wear_status == "ok"


def test_nvme_with_failed_health_and_backup_warning_is_critical() -> None:
    # smart_status.passed false, critical_warning 16 (volatile_memory_backup_failed true).
    rec = read("nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json")
    assert rec.health_passed is False
    assert rec.wear_status == "critical"
    assert "FAILED" in rec.reason and "volatile memory backup failed" in rec.reason


def test_intel_sata_ssd_at_85_percent_warns_and_counts_32mib_units() -> None:
    # 233 Media_Wearout_Indicator value 15; 241 Host_Writes_32MiB raw 62594010.
    rec = read("sat-Intel_730_and_DC_S35x0_3610_3700_Series_SSDs-INTEL_SSDSC2BB016T4-sdf.json")
    assert rec.kind == "ssd" and rec.rotation_rate == 0
    assert rec.percentage_used == 85
    assert rec.percentage_used_source == "100 - normalized Media_Wearout_Indicator"
    assert rec.bytes_written == 62594010 * MIB32
    assert rec.bytes_written_rule and rec.bytes_written_rule.startswith("Host_Writes_32MiB")
    assert rec.wear_status == "warn"
    assert "85%" in rec.reason


def test_dell_intel_s3520_ignores_its_misnamed_total_lbas_written() -> None:
    # 245 Percent_Life_Remaining value 100. 225 Host_Writes_32MiB raw 129493, and the
    # same 129493 under 241 "Total_LBAs_Written": 32 MiB units, not sectors.
    rec = read("sat-Dell_Certified_Intel_S3520_Series_SSDs-SSDSCKJB240G7R-sdm.json")
    assert rec.percentage_used == 0
    assert rec.percentage_used_source == "100 - normalized Percent_Life_Remaining"
    assert rec.bytes_written == 129493 * MIB32
    assert rec.bytes_written != 129493 * 512


def test_samsung_sata_ssd_counts_total_lbas_written_in_sectors() -> None:
    # 177 Wear_Leveling_Count value 90; 241 Total_LBAs_Written raw 218759569150; 512-byte LBAs.
    rec = read("SAMSUNG_MZ7WD240HAFV-00003_22.json")
    assert rec.percentage_used == 10
    assert rec.bytes_written == 218759569150 * 512
    assert "Total_LBAs_Written" in (rec.bytes_written_rule or "")
    assert (rec.available_spare, rec.available_spare_threshold) == (100, 10)


def test_micron_percent_lifetime_remain_counts_down() -> None:
    # 202 Percent_Lifetime_Remain value 99 (raw 1); 246 Total_LBAs_Written raw 153586889664.
    rec = read("sat-Micron_5100_Pro___52x0___5300_SSDs-Micron_5300_MTFDDAK960TDS-sdi.json")
    assert rec.percentage_used == 1
    assert rec.bytes_written == 153586889664 * 512


def test_kingston_life_left_and_gib_writes() -> None:
    # 231 SSD_Life_Left value 98; 241 Lifetime_Writes_GiB raw 398.
    rec = read("sat-Phison_Driven_SSDs-KINGSTON_SA400M8120G-sda.json")
    assert rec.percentage_used == 2
    assert rec.bytes_written == 398 * GIB


def test_sas_disk_reads_write_gigabytes_and_has_no_flash_wear() -> None:
    # rotation_rate 10020; write gigabytes_processed "292086.584"; uncorrected errors 0.
    rec = read("HITACHI_H109060SESUN600G_9.json")
    assert (rec.kind, rec.rotation_rate) == ("sas", 10020)
    assert rec.percentage_used is None
    assert rec.bytes_written == 292_086_584_000_000
    assert rec.media_errors == 0
    assert rec.wear_status == "ok" and "spinning" in rec.reason


def test_sas_ssd_endurance_indicator_is_its_percentage_used() -> None:
    doc = json.loads((CORPUS / "HITACHI_H109060SESUN600G_9.json").read_text())
    doc["rotation_rate"] = 0
    doc["scsi_percentage_used_endurance_indicator"] = 83  # smartctl 7.3 writes a number
    rec = parse_smartctl(doc)
    classify(rec, Thresholds())
    assert (rec.kind, rec.percentage_used, rec.wear_status) == ("sas", 83, "warn")
    doc["scsi_percentage_used_endurance_indicator"] = {"percentage_used_endurance_indicator": 91}
    rec = parse_smartctl(doc)
    classify(rec, Thresholds())
    assert (rec.percentage_used, rec.wear_status) == (91, "critical")


def test_hdd_has_no_percentage_used_even_with_total_lbas_written() -> None:
    # Seagate Exos X16: rotation_rate 7200, 241 Total_LBAs_Written present.
    rec = read("sat-Seagate_Exos_X16-ST16000NM001G-2KK103-sda.json")
    assert (rec.kind, rec.percentage_used, rec.bytes_written) == ("hdd", None, None)
    assert rec.wear_status == "ok"


def test_old_disk_without_rotation_rate_is_a_spinning_disk() -> None:
    # Seagate Barracuda 7200.10 (2006): no rotation_rate key, no SSD attribute.
    rec = read("ST3200820AS_16.json")
    assert rec.rotation_rate is None
    assert (rec.kind, rec.percentage_used) == ("hdd", None)


def test_reported_uncorrectable_error_is_critical_unless_the_setting_says_otherwise() -> None:
    # MB0500EBNCR: 187 Reported_Uncorrect raw 1.
    rec = read("MB0500EBNCR_14.json")
    assert (rec.media_errors, rec.wear_status) == (1, "critical")
    relaxed = read("MB0500EBNCR_14.json", Thresholds(media_errors_critical=0))
    assert relaxed.wear_status == "ok"


def test_thresholds_from_settings_move_the_status() -> None:
    # nvme6: "percentage_used": 75.
    name = "nvme-null-INTEL_SSDPE2KX020T7-nvme6.json"
    assert read(name).wear_status == "ok"
    assert read(name, Thresholds(warn_percent=70)).wear_status == "warn"
    assert read(name, Thresholds(warn_percent=60, critical_percent=75)).wear_status == "critical"


def test_nvme_spare_below_its_threshold_is_critical() -> None:
    doc = json.loads((CORPUS / "nvme-null-MTFDHAX1T6MCE-1AN1ZABYY-nvme0.json").read_text())
    doc["nvme_smart_health_information_log"]["available_spare"] = 4  # threshold is 5
    rec = parse_smartctl(doc)
    classify(rec, Thresholds())
    assert rec.wear_status == "critical"
    assert "below the drive's threshold 5%" in rec.reason


def test_count_up_attribute_uses_raw_percent_used() -> None:
    doc = json.loads((CORPUS / "sat-Phison_Driven_SSDs-KINGSTON_SA400M8120G-sda.json").read_text())
    table = doc["ata_smart_attributes"]["table"]
    for row in table:
        if row["name"] == "SSD_Life_Left":
            row["name"] = "Percent_Lifetime_Used"
            row["raw"] = {"value": 37, "string": "37"}
    rec = parse_smartctl(doc)
    assert rec.percentage_used == 37
    assert "counts up" in (rec.percentage_used_source or "")


def test_missing_device_error_output_is_unknown_with_smartctls_message() -> None:
    # What smartctl 7.3 prints for a device that does not exist (recorded on Debian 12).
    doc = {
        "json_format_version": [1, 0],
        "smartctl": {
            "version": [7, 3],
            "argv": ["smartctl", "--json", "-a", "/dev/sdz"],
            "messages": [
                {
                    "string": "Smartctl open device: /dev/sdz failed: No such device",
                    "severity": "error",
                }
            ],
            "exit_status": 2,
        },
    }
    rec = parse_smartctl(doc, "/dev/sdz")
    classify(rec, Thresholds())
    assert rec.wear_status == "unknown"
    assert rec.device == "/dev/sdz"
    assert "No such device" in rec.reason


@pytest.mark.skipif(shutil.which("smartctl") is None, reason="smartmontools not installed")
def test_real_smartctl_on_a_missing_device_is_unknown_not_a_crash(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-disk")
    rec = read_smartctl(missing, shutil.which("smartctl") or "smartctl", subprocess.run)
    classify(rec, Thresholds())
    assert rec.wear_status == "unknown"
    assert missing in rec.reason


def test_virtual_disk_model_is_unknown() -> None:
    doc = json.loads((CORPUS / "ST3500418AS_12.json").read_text())
    doc["model_name"] = "QEMU HARDDISK"
    rec = parse_smartctl(doc)
    classify(rec, Thresholds())
    assert rec.wear_status == "unknown" and "virtual disk" in rec.reason


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = [
    "device", "model_name", "serial_number", "rotation_rate", "smart_status", "smart_support",
    "nvme_smart_health_information_log", "ata_smart_attributes", "scsi_error_counter_log",
    "scsi_percentage_used_endurance_indicator", "logical_block_size", "model_family", "smartctl",
]  # fmt: skip
SAMPLES = [json.loads(p.read_text()) for p in FILES[::9]]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(SAMPLES), st.sampled_from(KEYS), JSON)
def test_garbage_in_any_field_never_raises(doc: dict[str, Any], key: str, junk: Any) -> None:
    doc = copy.deepcopy(doc)
    doc[key] = junk
    rec = parse_smartctl(doc)
    classify(rec, Thresholds())
    assert rec.wear_status in STATUSES


@settings(max_examples=100, deadline=None)
@given(JSON)
def test_any_json_document_never_raises(junk: Any) -> None:
    rec = parse_smartctl(junk, "/dev/x")
    classify(rec, Thresholds())
    assert rec.wear_status in STATUSES
