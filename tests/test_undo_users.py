"""undo removes the system users gotune created for its services (operations/undo.py).

Real accounts in a sandbox host (its own /etc; this machine's accounts are never
touched): a system user, a process running as it, and the shell undo runs. The
sandbox tests of apply then undo (tests/test_units_systemd.py,
tests/test_buildcache_deploy.py) check the same end to end.
"""

from __future__ import annotations

import pytest

from gotune.agent.paths import UNDO_DIR
from gotune.facts.collect import Dump
from gotune.facts.state import parse_undo
from gotune.operations.undo import remove_user_cmd
from tests.conftest import SandboxFactory

ACCOUNT = "gotune-test"


@pytest.mark.sandbox
def test_the_user_goes_once_its_last_process_has_stopped(sandbox: SandboxFactory) -> None:
    """A supervised service stops a moment after its script is removed: undo waits for it."""
    (host,) = sandbox(1).hosts
    made = host.run(f"useradd --system --no-create-home --shell /usr/sbin/nologin {ACCOUNT} && "
                    f"setsid -f setpriv --reuid={ACCOUNT} --regid={ACCOUNT} --clear-groups "
                    "sleep 1.5 </dev/null >/dev/null 2>&1 && sleep 0.2 && "
                    f"pgrep -u {ACCOUNT} sleep")  # fmt: skip
    assert made.returncode == 0, made.stderr
    out = host.run(remove_user_cmd(ACCOUNT), timeout=60)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert host.run(f"id -u {ACCOUNT}").returncode != 0
    again = host.run(remove_user_cmd(ACCOUNT), timeout=60)
    assert again.returncode == 0 and again.stderr == ""  # gone already: nothing to do


def test_a_user_record_is_read_back_from_the_collectors_listing() -> None:
    dump = Dump(exists={f"{UNDO_DIR}/users/gotune-mirror", f"{UNDO_DIR}/units/x.service"})
    assert parse_undo(dump).users == ["gotune-mirror"]
