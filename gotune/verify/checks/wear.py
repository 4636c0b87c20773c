"""The wear component's check: the periodic SSD wear check has run recently."""

from __future__ import annotations

import time
from typing import Any

from gotune.verify.checks.base import check

# The wear check runs hourly (plus up to 10 min random delay): a reading older
# than three hours means at least two runs were missed and the schedule is not running.
WEAR_MAX_AGE_S = 3 * 3600


def check_wear(wear: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    name = "wear check has run"
    if wear.get("error"):
        return check(name, False, f"{wear.get('path')}: {wear['error']}")
    updated = wear.get("updated")
    if not isinstance(updated, (int, float)) or updated <= 0:
        return check(name, False, f"{wear.get('path')} has no reading yet")
    age = now - float(updated)
    if age > WEAR_MAX_AGE_S:
        return check(name, False, f"last reading {age / 86400:.1f} days ago")
    return check(name, True, f"status {wear.get('status')}, {age / 3600:.1f} h ago")
