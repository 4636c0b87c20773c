"""A distribution package gotune installs is recorded, and ``gotune undo`` removes it;
one that was there before is left alone (operations/state.package). Likewise
node_exporter's textfile directory, which the wear check writes to: undo removes
what gotune made of it only while empty (operations/state.record_shared_dir).

Real packages in a sandbox host, its own dpkg database (this machine's packages are
never touched): the host starts without smartmontools (removed inside it), apply
installs it for the wear check with the host's apt-get, undo removes it again.
"""

from __future__ import annotations

import pytest

from tests.conftest import SandboxFactory
from tests.sandbox import SandboxHost
from tests.test_apply import gotune, sh

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

TEXTFILE = "/var/lib/prometheus/node-exporter"
WEAR = {"gotune_users": ["dev"], "gotune_wear_enabled": True,
        "gotune_wear_install_smartmontools": True}


def installed(host: SandboxHost, package: str) -> bool:
    out = host.run(f"dpkg-query -W -f='${{Status}}' {package}")
    return bool(out.returncode == 0 and "ok installed" in out.stdout)


def test_apply_installs_and_records_smartmontools_undo_removes_it(
    sandbox: SandboxFactory,
) -> None:
    host = sandbox(1, data=[WEAR]).hosts[0]
    host.add_user("dev")
    sh(host, "DEBIAN_FRONTEND=noninteractive dpkg --purge smartmontools")
    assert not installed(host, "smartmontools")
    sh(host, "rm -rf /var/lib/prometheus")
    inventory = str(host.key.parent / "inventory.py")

    first = gotune("apply", inventory, "--yes", "--no-verify")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert installed(host, "smartmontools")
    assert sh(host, "cat /var/lib/gotune/undo/packages/smartmontools") == "apt-get smartmontools\n"
    again = gotune("apply", inventory, "--yes", "--no-verify")
    assert again.returncode == 0 and "sbx1: 0 changed" in again.stdout, again.stdout

    undo = gotune("undo", inventory, "--yes")
    assert undo.returncode == 0, undo.stdout[-3000:] + undo.stderr[-3000:]
    assert "smartmontools" in undo.stdout  # listed among what it restores
    assert not installed(host, "smartmontools")
    assert sh(host, "test -e /var/lib/prometheus || echo gone") == "gone\n"


def test_a_package_that_was_there_before_is_not_recorded_and_stays(
    sandbox: SandboxFactory,
) -> None:
    host = sandbox(1, data=[WEAR]).hosts[0]
    host.add_user("dev")
    assert installed(host, "smartmontools")  # this machine's, seen through the host
    sh(host, "rm -rf /var/lib/prometheus && mkdir /var/lib/prometheus")
    inventory = str(host.key.parent / "inventory.py")
    applied = gotune("apply", inventory, "--yes", "--no-verify")
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]
    assert sh(host, "ls /var/lib/gotune/undo/packages 2>/dev/null; :") == ""
    # node_exporter, installed after gotune, writes its own file beside gotune's.
    sh(host, f"echo 'node_x 1' > {TEXTFILE}/node.prom")
    assert gotune("undo", inventory, "--yes").returncode == 0
    assert installed(host, "smartmontools")
    assert sh(host, f"ls {TEXTFILE}") == "node.prom\n"  # gotune's file gone, the dir kept
