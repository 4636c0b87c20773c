"""Each developer user's GOENV file: where the caches' and the mirror's values reach Go.

The file is what ``go env -w`` writes, so every Go process of the user reads it: a
shell, a cron job and an IDE started from the desktop alike (``/etc/profile.d``
would miss the IDE). Plan: ``gotune/plan/goenv.py``; apply: ``operations/goenv.py``
(only gotune's keys change, every other line is kept, the file stays the user's);
verify: ``gotune/verify/checks/caches.py`` compares ``go env`` in a login and a
non-login shell with the plan; undo restores the file byte for byte.
"""

from __future__ import annotations

from typing import Any

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Users

from gotune.operations import goenv
from gotune.plan.model import HostPlan


@deploy("gotune GOENV")
def deploy_goenv(hp: HostPlan) -> None:
    """Write the planned keys into each developer user's GOENV file."""
    if not hp.plan.goenv:
        host.noop("no GOENV to write")
        return
    accounts: dict[str, Any] = host.get_fact(Users)
    for user, d in hp.plan.goenv.items():
        account = accounts[user]
        goenv.settings(
            name=f"{user}'s GOENV ({', '.join(d.values)})", user=user,
            group=str(account["group"]), home=hp.facts.users[user].user.home or account["home"],
            path=str(d.value), values=dict(d.values),
        )  # fmt: skip
