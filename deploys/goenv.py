"""Each developer user's GOENV file: where the caches' and the mirror's values reach Go.

The file is what ``go env -w`` writes, so every Go process of the user reads it: a
shell, a cron job and an IDE started from the desktop alike (``/etc/profile.d``
would miss the IDE). Plan: ``gotune/plan/goenv.py``; apply: ``operations/goenv.py``
(only gotune's keys change, every other line is kept, the file stays the user's);
verify: ``gotune/verify/checks/caches.py`` compares ``go env`` in a login and a
non-login shell with the plan; undo restores the file byte for byte.

The caches' keys are written by the caches component the moment each user's caches
are in place (``user_goenv`` with ``CACHE_KEYS``): an apply that fails later, in
another component, leaves go pointing at where its caches now are, never at a moved
one's old, empty place. The rest (GOPROXY, GOCACHEPROG) waits for their services.
"""

from __future__ import annotations

from typing import Any

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Users

from gotune.operations import goenv
from gotune.plan.model import HostPlan


def user_goenv(hp: HostPlan, user: str, account: dict[str, Any],
               keys: tuple[str, ...] | None = None) -> None:
    """One user's planned GOENV values (only ``keys``' when given) into their file."""
    d = hp.plan.goenv.get(user)
    values = {k: v for k, v in (d.values if d else {}).items() if keys is None or k in keys}
    if d is None or not values:
        return
    goenv.settings(
        name=f"{user}'s GOENV ({', '.join(values)})", user=user, group=str(account["group"]),
        home=hp.facts.users[user].user.home or account["home"], path=str(d.value),
        values=values,
    )  # fmt: skip


@deploy("gotune GOENV")
def deploy_goenv(hp: HostPlan) -> None:
    """Write the planned keys into each developer user's GOENV file."""
    if not hp.plan.goenv:
        host.noop("no GOENV to write")
        return
    accounts: dict[str, Any] = host.get_fact(Users)
    for user in hp.plan.goenv:
        user_goenv(hp, user, accounts[user])
