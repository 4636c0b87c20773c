"""The mirror component's checks: the mirror in the user's GOPROXY answers and serves."""

from __future__ import annotations

from typing import Any

from gotune.verify.checks.base import check


def checks(user: str, mirror: dict[str, Any]) -> list[dict[str, Any]]:
    """The mirror in the user's GOPROXY answers /healthz and serves a cached module."""
    name = f"{user}: mirror {mirror.get('url')} answers"
    if mirror.get("healthz_status") != 200:
        status = mirror.get("healthz_status")
        return [check(name, False, str(mirror.get("error") or f"/healthz answered {status}"))]
    out = [check(name, True, f"/healthz: {str(mirror.get('healthz', '')).strip()[:120]}")]
    name = f"{user}: mirror serves a module"
    module = mirror.get("module")
    if module is None:
        out.append(check(name, True, "nothing cached yet: no module to ask for"))
    elif mirror.get("module_status") == 200 and '"Version"' in str(mirror.get("module_body")):
        out.append(check(name, True, f"/{module}: {str(mirror['module_body']).strip()[:80]}"))
    else:
        problem = mirror.get("module_error") or f"answered {mirror.get('module_status')}"
        out.append(check(name, False, f"/{module}: {problem}"))
    return out
