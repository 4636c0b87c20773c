"""The shape of one check, shared by every component's checks."""

from __future__ import annotations

from typing import Any


def check(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "ok": bool(ok), "detail": detail}
