"""gotune installs smartmontools with the host's own package tool, records which, and
``gotune undo`` removes it with that tool (operations/state.package).

The tool is the host's distribution's (os-release ``ID``, then ``ID_LIKE``), not merely the
first one installed: Debian ships zypper, dnf and pacman as ordinary packages, and this
machine has them (the tests below need them), so a Debian host that picked zypper would
fail to install anything.

The sandbox tests run real dnf, zypper and pacman, each in a host posing as its
distribution, against a local repository whose stand-in package holds this machine's
smartctl (tests/package_repos.py says why: no Fedora, openSUSE or Arch mirror here). Each
host keeps its apt-get, to show that the distribution, not the tools found, decides.
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from gotune.operations.state import PACKAGE_TOOLS, tool_order
from tests import package_repos
from tests.conftest import SandboxFactory
from tests.test_apply import gotune, sh
from tests.test_undo_packages import WEAR, installed


def test_the_distributions_own_tool_comes_first_then_the_fallback_order() -> None:
    assert tool_order(["debian"])[0] == "apt-get"
    assert tool_order(["opensuse", "suse", "opensuse"])[0] == "zypper"
    assert tool_order(["rocky", "rhel", "centos", "fedora"])[:2] == ["dnf", "yum"]
    assert tool_order(["linuxmint", "ubuntu", "debian"])[0] == "apt-get"
    assert tool_order(["arch"])[0] == "pacman"
    assert tool_order(["alpine"])[0] == "apk"
    # An unknown distribution, or none: the fallback order, apt-get first (Debian is where
    # other distributions' tools are found installed).
    assert tool_order(["gentoo"]) == tool_order([]) == list(PACKAGE_TOOLS)
    assert tool_order([])[0] == "apt-get"
    for distro in (["fedora"], ["arch"], ["nixos"], []):
        order = tool_order(distro)
        assert sorted(order) == sorted(PACKAGE_TOOLS)  # every tool, each once


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], bytes]:
    """``repos(tool)``: the stand-in repository for ``tool``, built once per module; skips
    where this machine lacks what that takes (scripts/test installs it where it can)."""

    @functools.cache
    def repo(tool: str) -> bytes:
        missing = [c for c in package_repos.NEEDS[tool] if shutil.which(c) is None]
        if missing:
            pytest.skip(f"no {', '.join(missing)} on this machine")
        return package_repos.build(tool, Path(tmp_path_factory.mktemp(tool)))

    return repo


@pytest.mark.sandbox
@pytest.mark.slow
@pytest.mark.parametrize("tool", ["dnf", "zypper", "pacman"])
def test_apply_installs_with_the_distributions_tool_and_undo_removes_with_it(
    sandbox: SandboxFactory, repos: Callable[[str], bytes], tool: str
) -> None:
    host = sandbox(1, data=[WEAR]).hosts[0]
    host.add_user("dev")
    sh(host, "DEBIAN_FRONTEND=noninteractive dpkg --purge smartmontools")
    package_repos.pose_as(host, tool, repos(tool))
    query = package_repos.INSTALLED[tool]
    assert host.run(query).returncode != 0
    inventory = str(host.key.parent / "inventory.py")

    first = gotune("apply", inventory, "--yes", "--no-verify")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert host.run(query).returncode == 0  # in the tool's own database
    assert sh(host, "cat /var/lib/gotune/undo/packages/smartmontools") == f"{tool} smartmontools\n"
    assert not installed(host, "smartmontools")  # apt-get, still there, was not used
    again = gotune("apply", inventory, "--yes", "--no-verify")
    assert again.returncode == 0 and "sbx1: 0 changed" in again.stdout, again.stdout

    undo = gotune("undo", inventory, "--yes")
    assert undo.returncode == 0, undo.stdout[-3000:] + undo.stderr[-3000:]
    assert host.run(query).returncode != 0
    assert sh(host, "test -e /usr/sbin/smartctl || echo gone") == "gone\n"
    assert sh(host, "ls /var/lib/gotune/undo/packages 2>/dev/null; :") == ""


@pytest.mark.sandbox
@pytest.mark.slow
def test_a_host_whose_facts_cannot_load_is_reported_with_the_fact(
    sandbox: SandboxFactory, repos: Callable[[str], bytes]
) -> None:
    """pyinfra drops a host whose fact command fails while it prepares; apply says which
    fact, for that host, and applies the others (not "No hosts remaining!")."""
    sbx = sandbox(2, data=[WEAR, WEAR])
    broken, fine = sbx.hosts
    for host in sbx.hosts:
        host.add_user("dev")
    sh(broken, "DEBIAN_FRONTEND=noninteractive dpkg --purge smartmontools")
    # No base package: an empty pacman database, on which `pacman -Q` exits 1.
    package_repos.pose_as(broken, "pacman", repos("pacman"), base=False)
    fact = "could not load fact: pacman.PacmanPackages"

    both = gotune("apply", str(sbx.inventory), "--yes", "--no-verify", "--json")
    assert both.returncode == 1, both.stdout[-3000:] + both.stderr[-3000:]
    report = json.loads(both.stdout)["hosts"]
    assert report[broken.name]["ok"] is False and fact in report[broken.name]["error"]
    assert report[fine.name]["ok"] is True and report[fine.name]["changed"] > 0

    again = gotune("apply", str(sbx.inventory), "--yes", "--no-verify")
    assert again.returncode == 1
    assert f"{fine.name}: 0 changed" in again.stdout
    line = next(ln for ln in again.stdout.splitlines() if ln.startswith(f"{broken.name}: "))
    assert "0 changed, FAILED:" in line and fact in line, again.stdout

    # The broken host alone: pyinfra has no host left ("No hosts remaining!"); apply says why.
    alone = sbx.inventory.with_name("broken.py")
    alone.write_text("".join(ln for ln in sbx.inventory.read_text().splitlines(keepends=True)
                             if f"'{fine.name}'" not in ln))  # fmt: skip
    only = gotune("apply", str(alone), "--yes", "--no-verify")
    assert only.returncode == 1
    assert only.stderr.startswith(f"gotune: nothing changed: {broken.name}: "), only.stderr
    assert fact in only.stderr and "No hosts remaining" not in only.stderr
