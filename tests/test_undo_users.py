"""undo removes the system users gotune created for its services (operations/undo.py).

Real accounts on this machine (root only): a throwaway system user, a process running
as it, and the shell undo runs. The sandbox tests (tests/test_units_systemd.py,
tests/test_buildcache_deploy.py) check the same after a real apply and undo.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from gotune.agent.paths import UNDO_DIR
from gotune.facts.collect import Dump
from gotune.facts.state import parse_undo
from gotune.operations.undo import remove_user_cmd

ROOT_ONLY = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("setpriv"),
    reason="creates a system user (root, useradd, setpriv)",
)


@pytest.fixture
def account() -> Iterator[str]:
    name = f"gotune-test-{os.getpid() % 100000}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    name], check=True)  # fmt: skip
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)


def exists(name: str) -> bool:
    return subprocess.run(["id", "-u", name], capture_output=True, check=False).returncode == 0


@ROOT_ONLY
def test_the_user_goes_once_its_last_process_has_stopped(account: str) -> None:
    """A supervised service stops a moment after its script is removed: undo waits for it."""
    runs_as = subprocess.Popen(["setpriv", f"--reuid={account}", f"--regid={account}",
                                "--clear-groups", "sleep", "1.5"])  # fmt: skip
    try:
        out = subprocess.run(["sh", "-c", remove_user_cmd(account)], capture_output=True,
                             text=True, timeout=30, check=False)  # fmt: skip
    finally:
        runs_as.wait()
    assert out.returncode == 0 and out.stderr == ""
    assert not exists(account)
    again = subprocess.run(["sh", "-c", remove_user_cmd(account)], capture_output=True,
                           text=True, timeout=30, check=False)  # fmt: skip
    assert again.returncode == 0 and again.stderr == ""  # gone already: nothing to do


def test_a_user_record_is_read_back_from_the_collectors_listing() -> None:
    dump = Dump(exists={f"{UNDO_DIR}/users/gotune-mirror", f"{UNDO_DIR}/units/x.service"})
    assert parse_undo(dump).users == ["gotune-mirror"]
