"""The buildcache component's checks: GOCACHEPROG as planned, the helper runs, its site answers.

From the runner's observations of one user (``gotune.agent.verify.buildcache``) and the
stored plan: GOCACHEPROG in ``go env`` is what the plan kept (or gone when it kept
none), the helper starts within ``HELPER_START_LIMIT_MS`` and declares its commands,
the site answers /healthz; the figures apply measured are shown with them.
"""

from __future__ import annotations

import json
from typing import Any

from gotune.plan.buildcache import measured_text
from gotune.plan.model import Plan
from gotune.verify.checks.base import check

# go starts the helper for every command and waits for its first line; a no-op build
# takes ~0.1-0.3 s, so 50 ms would already cost it a sixth.
HELPER_START_LIMIT_MS = 50.0


def checks(user: str, rec: dict[str, Any], plan: Plan | None) -> list[dict[str, Any]]:
    """GOCACHEPROG, the helper and its site, for ``user``."""
    out: list[dict[str, Any]] = []
    helper = plan.buildcache.helper if plan and plan.buildcache else None
    env = (rec.get("login") or {}).get("env") or {}
    if helper is not None:
        want = helper.command_for(user) or ""
        have = str(env.get("GOCACHEPROG") or "")
        ok = have == want
        detail = (f"GOCACHEPROG={have or '(unset)'}" if ok
                  else f"GOCACHEPROG is {have or '(unset)'}, planned {want or '(unset)'}")
        if helper.measured:
            detail += f"; measured: {measured_text(helper.measured)}"
        out.append(check(f"{user}: GOCACHEPROG as planned", ok, detail))
    found = rec.get("buildcache")
    if not found:
        return out
    started = found.get("helper") or {}
    name = f"{user}: build cache helper starts"
    if not started.get("ok"):
        out.append(check(name, False, str(started.get("error") or "it did not answer go")))
    else:
        ms = float(started.get("start_ms") or 0.0)
        out.append(check(name, ms <= HELPER_START_LIMIT_MS,
                         f"{ms:.1f} ms to its first answer, the fastest of "
                         f"{len(started.get('starts_ms') or [ms])} (at most "
                         f"{HELPER_START_LIMIT_MS:g} ms), commands {started.get('commands')}"))
    if found.get("site"):
        name = f"{user}: team build cache {found['site']} answers"
        if found.get("healthz_status") != 200:
            reason = found.get("error") or f"/healthz answered {found.get('healthz_status')}"
            out.append(check(name, False, f"{reason}; builds go on from the local cache only"))
        else:
            try:
                health = json.loads(found.get("healthz") or "{}")
            except ValueError:
                health = {}
            rate = health.get("hit_rate")
            out.append(check(name, True, (
                f"{health.get('objects', '?')} outputs, "
                + (f"{rate * 100:.0f}% of gets hit" if rate is not None else "no gets yet")
                + (", builders may write" if health.get("writable") else ", read only"))))
    return out
