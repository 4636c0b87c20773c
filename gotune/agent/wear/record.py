"""One drive's wear reading: the record `gotune wear --json` prints per device."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("nvme", "ssd", "hdd", "sas", "emmc", "unknown")

# Kinds whose media is flash (wears out with writes); "sas" counts only when not rotating.
FLASH_KINDS = ("nvme", "ssd", "emmc")


@dataclass
class DeviceWear:
    """What gotune knows about one drive's wear, and where each number came from."""

    device: str
    model: str | None = None
    serial: str | None = None
    kind: str = "unknown"
    rotation_rate: int | None = None  # rpm; 0 for solid state, None when not reported
    smart_available: bool = False
    health_passed: bool | None = None
    percentage_used: int | None = None
    percentage_used_source: str | None = None
    bytes_written: int | None = None
    bytes_written_rule: str | None = None
    available_spare: int | None = None
    available_spare_threshold: int | None = None
    media_errors: int | None = None
    wear_status: str = "unknown"
    reason: str = ""
    source: str = "smartctl"  # "smartctl", "sysfs" or "none"
    # Facts the status rules read but the JSON does not need to repeat.
    warnings: list[str] = field(default_factory=list, repr=False)
    pre_eol: int | None = field(default=None, repr=False)

    @property
    def is_flash(self) -> bool:
        if self.kind in FLASH_KINDS:
            return True
        return self.kind == "sas" and self.rotation_rate == 0

    def history_key(self) -> str:
        """Identity of the physical drive: model+serial, else model+device path.

        Keyed by serial so a drive swapped into the same slot starts a new series.
        """
        ident = self.serial if self.serial else self.device
        return f"{self.model or '?'}|{ident}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["warnings"]
        del data["pre_eol"]
        return data
