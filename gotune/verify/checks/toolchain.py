"""The toolchain component's check: the developer's go is the version the plan installed."""

from __future__ import annotations

from typing import Any

from gotune.plan.model import DistroToolchain, Plan, TarballToolchain
from gotune.verify.checks.base import check


def checks(user: str, rec: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
    """The login shell's ``go env GOVERSION`` against a planned install (none: no check)."""
    d = plan.toolchain
    if not isinstance(d, TarballToolchain | DistroToolchain) or not d.value:
        return []
    name = f"{user}: go is {d.value}"
    login = rec.get("login") or {}
    if not login.get("ok"):
        return [check(name, False, str(login.get("error") or "go env failed"))]
    have = str((login.get("env") or {}).get("GOVERSION", ""))
    want = f"go{d.value}"
    ok = have == want if isinstance(d, TarballToolchain) else have.startswith(want)
    where = (login.get("env") or {}).get("GOROOT", "?")
    return [check(name, ok, f"{have or 'no version'} at {where}" + ("" if ok else
                                                                   f", planned {want}"))]
