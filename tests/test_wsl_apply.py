"""The wsl component's apply half, without a host: the bytes it would write, and refusals.

On sandbox hosts (tests/test_wsl_sandbox.py) the same operations run end to end.
"""

from __future__ import annotations

import pytest
from pyinfra.api import OperationError

from gotune.operations.undo import restore_file_cmd
from gotune.operations.wsl import marker_cmd, merged_bytes, sysctl_snippet

KEYS = {"wsl2.memory": "24GB", "experimental.autoMemoryReclaim": "gradual"}


def test_a_utf16_wslconfig_stays_utf16_with_its_bom_and_crlf() -> None:
    old = "\ufeff[wsl2]\r\nmemory=8GB\r\n".encode("utf-16-le")
    new = merged_bytes("/mnt/c/Users/x/.wslconfig", old, KEYS, [], None, "\r\n", True)
    assert new.decode("utf-16-le") == ("\ufeff[wsl2]\r\nmemory=24GB\r\n\r\n[experimental]\r\n"
                                       "autoMemoryReclaim=gradual\r\n")  # fmt: skip


def test_a_new_wslconfig_is_utf8_with_windows_line_ends() -> None:
    new = merged_bytes("/mnt/c/Users/x/.wslconfig", None, KEYS, [], None, "\r\n", True)
    assert new == b"[wsl2]\r\nmemory=24GB\r\n\r\n[experimental]\r\nautoMemoryReclaim=gradual\r\n"


@pytest.mark.parametrize(
    ("old", "why"),
    [(b"[wsl2]\nmemory 8GB\n", "line 2"), (b"[wsl2]\nmemory=\xff8GB\n", "not UTF-8")],
)
def test_a_file_wsl_would_not_read_stops_the_apply_with_nothing_written(
    old: bytes, why: str
) -> None:
    with pytest.raises(OperationError, match=f"/mnt/c/x/.wslconfig: .*{why}.*nothing written"):
        merged_bytes("/mnt/c/x/.wslconfig", old, KEYS, [], None, "\r\n", True)


def test_undo_restores_a_wslconfig_even_where_drvfs_refuses_chown_and_notes_the_restart() -> None:
    cmd = restore_file_cmd("/mnt/c/Users/Dev User/.wslconfig", True)
    assert "cp -a" in cmd and "|| cp " in cmd and "'/mnt/c/Users/Dev User/.wslconfig'" in cmd
    assert marker_cmd("/etc/wsl.conf").endswith(">> /run/gotune/wsl-restart-needed")
    assert sysctl_snippet("fs.inotify.max_user_watches", 524288).endswith(
        "fs.inotify.max_user_watches = 524288\n")
