"""Parse ``smartctl --json -a`` output (NVMe, SATA/ATA, SAS/SCSI) into a DeviceWear.

Pure: no I/O. Tolerant: a field missing or of the wrong type is "not reported",
never an exception, so one odd drive cannot hide the others.
"""

from __future__ import annotations

import math
import re
from typing import Any

from gotune.agent.wear.record import DeviceWear

# NVMe "data units" are thousands of 512-byte units (NVMe base spec, SMART log bytes 48-63).
NVME_DATA_UNIT_BYTES = 512_000

# smartctl's SCSI error counter log counts "gigabytes processed" in 10^9 bytes.
SCSI_GIGABYTE = 1_000_000_000

MIB = 1 << 20
GIB = 1 << 30

# ATA attributes whose *normalized* value is the share of life left (100 -> 0),
# most explicit name first. percentage_used = 100 - value.
REMAINING_LIFE_ATTRIBUTES = (
    "Percent_Life_Remaining",
    "Percent_Lifetime_Remain",
    "Remaining_Lifetime_Perc",
    "Perc_Rated_Life_Remain",
    "SSD_Life_Left",
    "Media_Wearout_Indicator",
    "Wear_Leveling_Count",
)

# ATA attributes that count UP: the *raw* value is the share of life used.
USED_LIFE_ATTRIBUTES = (
    "Percent_Lifetime_Used",
    "Perc_Rated_Life_Used",
    "Percentage_Used",
    "SSD_Life_Used",
)

# ATA attributes whose name states the unit of host writes: (name, bytes per raw unit).
HOST_WRITE_ATTRIBUTES = (
    ("Host_Writes_32MiB", 32 * MIB),
    ("Lifetime_Writes_GiB", GIB),
    ("Host_Writes_GiB", GIB),
    ("Total_Writes_GiB", GIB),
    ("Host_Writes_MiB", MIB),
)

# Total_LBAs_Written is in logical blocks only on some families; others (the
# Dell-branded Intel S3520 in the corpus) put 32 MiB units under the same name.
# These families document it as host sectors written.
LBA_WRITE_FAMILIES = re.compile(r"^(Samsung based SSDs|Micron|Crucial)", re.IGNORECASE)

# ATA attributes counting errors the drive could not correct (NVMe's media errors).
UNCORRECTABLE_ATTRIBUTES = ("Reported_Uncorrect", "Uncorrectable_Error_Cnt")

# ATA attributes whose normalized value is the spare area left (percent), threshold = thresh.
SPARE_ATTRIBUTES = ("Available_Reservd_Space", "Reserved_Block_Pct", "Unused_Rsvd_Blk_Cnt_Tot")

# Models hypervisors give their emulated disks: SMART there says nothing about the real drive.
VIRTUAL_MODELS = re.compile(
    r"QEMU|VBOX|VMware|Virtual ?disk|Msft Virtual|Red Hat VirtIO|Xen|Google PersistentDisk|"
    r"Amazon Elastic Block Store|BHYVE",
    re.IGNORECASE,
)

# NVMe critical_warning bits (NVMe base spec, SMART log byte 0) that mean the drive is failing.
NVME_CRITICAL_BITS = {
    0x01: "spare below threshold",
    0x04: "NVM subsystem reliability degraded",
    0x08: "media placed in read-only mode",
    0x10: "volatile memory backup failed",
}

# smartctl exit status bits (smartctl(8) RETURN VALUES) that mean no data was read.
EXIT_PARSE_ERROR = 0x01
EXIT_OPEN_FAILED = 0x02


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _str(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _messages(doc: dict[str, Any]) -> list[str]:
    out = []
    for m in _dict(doc.get("smartctl")).get("messages") or []:
        text = _str(_dict(m).get("string"))
        if text:
            out.append(text)
    return out


def _attributes(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """ATA attributes by name (the first of a repeated name wins, as smartctl lists them)."""
    table = _dict(doc.get("ata_smart_attributes")).get("table")
    out: dict[str, dict[str, Any]] = {}
    if isinstance(table, list):
        for row in table:
            name = _str(_dict(row).get("name"))
            if name and name not in out:
                out[name] = row
    return out


def _raw(attr: dict[str, Any]) -> int | None:
    return _int(_dict(attr.get("raw")).get("value"))


def _model(doc: dict[str, Any]) -> str | None:
    model = _str(doc.get("model_name")) or _str(doc.get("scsi_model_name"))
    if model:
        return model
    parts = [_str(doc.get("scsi_vendor")), _str(doc.get("scsi_product"))]
    joined = " ".join(p for p in parts if p)
    return joined or None


def device_name(doc: dict[str, Any], fallback: str) -> str:
    return _str(_dict(doc.get("device")).get("name")) or fallback


def parse_smartctl(doc: Any, fallback_device: str = "?") -> DeviceWear:
    """One ``smartctl --json -a`` document -> DeviceWear (status not yet classified)."""
    if not isinstance(doc, dict):
        return DeviceWear(
            device=fallback_device, source="none", reason="smartctl output is not a JSON object"
        )
    dev = _dict(doc.get("device"))
    rec = DeviceWear(device=device_name(doc, fallback_device))
    rec.model = _model(doc)
    rec.serial = _str(doc.get("serial_number"))
    exit_status = _int(_dict(doc.get("smartctl")).get("exit_status")) or 0
    messages = _messages(doc)
    protocol = (_str(dev.get("protocol")) or "").upper()
    if exit_status & (EXIT_PARSE_ERROR | EXIT_OPEN_FAILED) or not protocol:
        rec.source = "none"
        detail = messages[0] if messages else f"smartctl exit status {exit_status}"
        rec.reason = f"smartctl cannot read {rec.device}: {detail}"
        return rec
    if rec.model and VIRTUAL_MODELS.search(rec.model):
        rec.source = "none"
        rec.reason = f"virtual disk ({rec.model}): the hypervisor hides the physical drive's wear"
        return rec

    support = _dict(doc.get("smart_support"))
    available = support.get("available")
    rec.rotation_rate = _int(doc.get("rotation_rate"))
    passed = _dict(doc.get("smart_status")).get("passed")
    rec.health_passed = passed if isinstance(passed, bool) else None

    if protocol == "NVME":
        _parse_nvme(doc, rec)
    elif protocol == "ATA":
        _parse_ata(doc, rec)
    elif protocol == "SCSI":
        _parse_scsi(doc, rec)
    else:
        rec.kind = "unknown"
        rec.reason = f"unsupported protocol {protocol}"
    if isinstance(available, bool):
        rec.smart_available = available
    else:
        rec.smart_available = rec.health_passed is not None or rec.percentage_used is not None
    if not rec.smart_available and rec.health_passed is None:
        rec.source = "none"
        rec.reason = rec.reason or "SMART not available on this device"
    return rec


def _parse_nvme(doc: dict[str, Any], rec: DeviceWear) -> None:
    rec.kind = "nvme"
    log = _dict(doc.get("nvme_smart_health_information_log"))
    if not log:
        rec.reason = "no NVMe SMART/health log in smartctl output"
        return
    pct = _int(log.get("percentage_used"))
    if pct is not None and pct >= 0:  # may exceed 100: the spec lets it run to 255
        rec.percentage_used = pct
        rec.percentage_used_source = "NVMe percentage_used"
    units = _int(log.get("data_units_written"))
    if units is not None and units >= 0:
        rec.bytes_written = units * NVME_DATA_UNIT_BYTES
        rec.bytes_written_rule = "NVMe data_units_written x 512000"
    rec.available_spare = _int(log.get("available_spare"))
    rec.available_spare_threshold = _int(log.get("available_spare_threshold"))
    rec.media_errors = _int(log.get("media_errors"))
    warning = _int(log.get("critical_warning")) or 0
    for bit, text in NVME_CRITICAL_BITS.items():
        if warning & bit:
            rec.warnings.append(f"NVMe critical warning: {text}")


def _parse_ata(doc: dict[str, Any], rec: DeviceWear) -> None:
    attrs = _attributes(doc)
    _ata_percentage_used(doc, attrs, rec)
    if rec.rotation_rate is not None and rec.rotation_rate > 0:
        rec.kind = "hdd"
        rec.percentage_used = None
        rec.percentage_used_source = None
    elif rec.rotation_rate == 0 or rec.percentage_used is not None:
        rec.kind = "ssd"
    else:
        # Rotation rate arrived with ATA-8 (2008); a drive without it and without
        # any SSD wear attribute predates SATA SSDs: a spinning disk.
        rec.kind = "hdd"
    _ata_bytes_written(doc, attrs, rec)
    for name in UNCORRECTABLE_ATTRIBUTES:
        if name in attrs:
            rec.media_errors = _raw(attrs[name])
            break
    if rec.kind == "ssd":
        for name in SPARE_ATTRIBUTES:
            if name in attrs:
                value, thresh = _int(attrs[name].get("value")), _int(attrs[name].get("thresh"))
                if value is not None and 0 <= value <= 100:
                    rec.available_spare, rec.available_spare_threshold = value, thresh
                    break
    for name, attr in attrs.items():
        if _str(attr.get("when_failed")) == "now":
            rec.warnings.append(f"attribute {name} failing now")


def _ata_percentage_used(
    doc: dict[str, Any], attrs: dict[str, dict[str, Any]], rec: DeviceWear
) -> None:
    for name in REMAINING_LIFE_ATTRIBUTES:
        if name in attrs:
            value = _int(attrs[name].get("value"))
            if value is not None and 0 <= value <= 100:
                rec.percentage_used = 100 - value
                rec.percentage_used_source = f"100 - normalized {name}"
                return
    for name in USED_LIFE_ATTRIBUTES:
        if name in attrs:
            raw = _raw(attrs[name])
            if raw is not None and 0 <= raw <= 255:
                rec.percentage_used = raw
                rec.percentage_used_source = f"raw {name} (counts up)"
                return
    # smartctl -x adds the Device Statistics "Percentage Used Endurance Indicator".
    current = _int(_dict(doc.get("endurance_used")).get("current_percent"))
    if current is not None and current >= 0:
        rec.percentage_used = current
        rec.percentage_used_source = "ATA device statistics percentage used endurance indicator"


def _ata_bytes_written(
    doc: dict[str, Any], attrs: dict[str, dict[str, Any]], rec: DeviceWear
) -> None:
    for name, unit in HOST_WRITE_ATTRIBUTES:
        if name in attrs:
            raw = _raw(attrs[name])
            if raw is not None and raw >= 0:
                rec.bytes_written = raw * unit
                rec.bytes_written_rule = f"{name} raw x {unit} bytes (unit in the name)"
                return
    family = _str(doc.get("model_family")) or ""
    block = _int(doc.get("logical_block_size"))
    if "Total_LBAs_Written" in attrs and block and LBA_WRITE_FAMILIES.search(family):
        raw = _raw(attrs["Total_LBAs_Written"])
        if raw is not None and raw >= 0:
            rec.bytes_written = raw * block
            rec.bytes_written_rule = (
                f"Total_LBAs_Written raw x logical block size {block} ({family} counts sectors)"
            )


def _parse_scsi(doc: dict[str, Any], rec: DeviceWear) -> None:
    rec.kind = "sas"
    indicator = doc.get("scsi_percentage_used_endurance_indicator")
    if isinstance(indicator, dict):  # newer smartctl nests it
        indicator = indicator.get("percentage_used_endurance_indicator")
    pct = _int(indicator)
    if pct is not None and pct >= 0:
        rec.percentage_used = pct
        rec.percentage_used_source = "SCSI percentage used endurance indicator"
    log = _dict(doc.get("scsi_error_counter_log"))
    write = _dict(log.get("write"))
    gb = write.get("gigabytes_processed")
    gb_value: float | None = None
    if isinstance(gb, (str, int, float)) and not isinstance(gb, bool):
        try:
            gb_value = float(gb)
        except ValueError:
            gb_value = None
    if gb_value is not None and math.isfinite(gb_value) and gb_value >= 0:
        rec.bytes_written = round(gb_value * SCSI_GIGABYTE)
        rec.bytes_written_rule = "SCSI error counter log write gigabytes_processed x 10^9"
    errors = [
        _int(_dict(log.get(op)).get("total_uncorrected_errors"))
        for op in ("read", "write", "verify")
    ]
    counted = [e for e in errors if e is not None]
    if counted:
        rec.media_errors = sum(counted)
