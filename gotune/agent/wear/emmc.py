"""eMMC wear from sysfs: ``/sys/block/mmcblkN/device/{life_time,pre_eol_info}``.

The kernel exposes two EXT_CSD fields (JEDEC JESD84-B51):
- DEVICE_LIFE_TIME_EST_TYP_A/B (``life_time``, two hex values): 0x01 = 0-10% of
  the rated life used, 0x02 = 10-20% ... 0x0A = 90-100%, 0x0B = exceeded.
  Type A is SLC-mode blocks, type B MLC/TLC blocks; the worse of the two counts.
- PRE_EOL_INFO (``pre_eol_info``): 0x01 normal, 0x02 warning (80% of reserved
  blocks consumed), 0x03 urgent (90%).
Needs no root: these files are world-readable.
"""

from __future__ import annotations

from pathlib import Path

from gotune.agent.wear.record import DeviceWear

# life_time band 0x0B: the estimated life is exceeded; report it as 100% used.
LIFE_EXCEEDED = 0x0B
BAND_PERCENT = 10  # each life_time step is a 10% band; report its upper bound


def _hex(text: str) -> int | None:
    try:
        return int(text.strip(), 16)
    except ValueError:
        return None


def parse_life_time(text: str) -> tuple[int | None, int | None]:
    """``"0x02 0x01"`` -> (2, 1); anything unreadable -> None in its place."""
    parts = text.split()
    values: list[int | None] = [_hex(p) for p in parts[:2]]
    while len(values) < 2:
        values.append(None)
    return values[0], values[1]


def band_to_percent(band: int | None) -> int | None:
    """A life_time band as the upper bound of its percentage range (0x00 = not defined)."""
    if band is None or band <= 0 or band > LIFE_EXCEEDED:
        return None
    return min(band * BAND_PERCENT, 100)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def read_emmc(block_dir: Path, device: str) -> DeviceWear:
    """Wear of one ``/sys/block/mmcblkN`` directory (status not yet classified)."""
    dev_dir = block_dir / "device"
    rec = DeviceWear(device=device, kind="emmc", source="sysfs", rotation_rate=0)
    rec.model = _read(dev_dir / "name")
    rec.serial = _read(dev_dir / "serial")
    card_type = _read(dev_dir / "type")
    if card_type is not None and card_type.upper() != "MMC":
        rec.kind = "unknown"
        rec.source = "none"
        rec.reason = f"{card_type} card: reports no wear (only eMMC has life_time)"
        return rec
    life = _read(dev_dir / "life_time")
    eol = _read(dev_dir / "pre_eol_info")
    if life is None and eol is None:
        rec.source = "none"
        rec.reason = "no life_time/pre_eol_info in sysfs (eMMC older than 5.0, or kernel too old)"
        return rec
    rec.smart_available = True
    if life is not None:
        a, b = parse_life_time(life)
        pcts = [p for p in (band_to_percent(a), band_to_percent(b)) if p is not None]
        if pcts:
            rec.percentage_used = max(pcts)
            exceeded = LIFE_EXCEEDED in (a, b)
            rec.percentage_used_source = f"eMMC life_time {life!r} (upper bound of the 10% band" + (
                ", estimated life exceeded)" if exceeded else ")"
            )
    if eol is not None:
        rec.pre_eol = _hex(eol)  # eMMC has no pass/fail verdict: health_passed stays None
    return rec
