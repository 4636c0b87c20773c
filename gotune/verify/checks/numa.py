"""The numa component's checks: every wrapper gotune kept runs the tool as the user."""

from __future__ import annotations

from typing import Any

from gotune.verify.checks.base import check


def checks(user: str, rec: dict[str, Any]) -> list[dict[str, Any]]:
    """One check per wrapper the runner ran (``TOOL version`` through the wrapper)."""
    return [
        check(f"{user}: wrapper {w.get('tool')} runs", bool(w.get("ok")),
              f"{w.get('path')}: {w.get('output')}")
        for w in rec.get("wrappers") or []
    ]  # fmt: skip
