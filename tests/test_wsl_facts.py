"""The WSL section of the facts: what the collector's records of a WSL2 distro become.

The records are the collector's own (``collect_wsl`` in collect.sh, run end to end on
a sandbox host posing as WSL2 in tests/test_wsl_sandbox.py); here each answer a Windows
host can give, interop off included, is parsed alone.
"""

from __future__ import annotations

import pytest

from gotune.facts.collect import WSL_LOOKUPS, Dump
from gotune.facts.wsl import WslFileBytes, drive_costs, lookup_samples, parse_wsl, windows_entries

WIN_PATH = ("/usr/local/bin:/usr/bin:/bin:/mnt/c/Windows/System32:/mnt/c/Program Files/Git/cmd:"
            "/mnt/c/Users/Dev User/AppData/Local/Programs/Microsoft VS Code/bin:/mnt/wslg/bin")


def wsl_dump(**commands: tuple[bytes, int]) -> Dump:
    dump = Dump(live=True, complete=True)
    dump.files["/etc/wsl.conf"] = b"[boot]\r\nsystemd=true\r\n"
    dump.commands["wsl.conf owner"] = (b"0", 0)
    dump.values["/proc/sys/fs/inotify/max_user_watches"] = "8192"
    dump.commands.update(commands)
    return dump


def test_interop_finds_the_profile_its_wslconfig_and_the_windows_hosts_size() -> None:
    dump = wsl_dump(**{
        "wsl profile": (b"source=interop\npath=/mnt/c/Users/Dev User\n", 0),
        "wsl windows": (b"memory=34091302912\r\ncpus=16\r\n", 0),
        "wsl path": (WIN_PATH.encode(), 0),
        "wsl path lookups": (b"with 9000000\nwithout 400000\nwithout 300000\nwith 8000000\n", 0),
        "wsl drive cost": (b"/mnt/c 160000000 800000 200\n", 0),
        "wsl projects dev": (b"history\t/mnt/c/Users/Dev User/src/app\n", 0),
    })  # fmt: skip
    dump.files["/mnt/c/Users/Dev User/.wslconfig"] = b"\xff\xfe" + "[wsl2]\r\n".encode("utf-16-le")
    dump.exists.add("/mnt/c/Users/Dev User")
    unknown: list[str] = []
    wsl = parse_wsl(dump, ["dev"], unknown)
    assert unknown == []
    assert (wsl.windows_profile, wsl.profile_source, wsl.windows_profile_exists) == (
        "/mnt/c/Users/Dev User", "interop", True)
    assert wsl.wslconfig is not None and wsl.wslconfig.encoding == "utf-16-le"
    assert wsl.wslconfig.text == "\ufeff[wsl2]\r\n"
    assert wsl.conf.owner_uid == 0 and wsl.conf.text == "[boot]\r\nsystemd=true\r\n"
    assert (wsl.windows_memory_bytes, wsl.windows_cpus, wsl.max_user_watches) == (
        34091302912, 16, 8192)
    assert wsl.windows_path_entries == [
        "/mnt/c/Windows/System32", "/mnt/c/Program Files/Git/cmd",
        "/mnt/c/Users/Dev User/AppData/Local/Programs/Microsoft VS Code/bin"]
    assert wsl.lookup_with_s == pytest.approx([0.009 / WSL_LOOKUPS, 0.008 / WSL_LOOKUPS])
    (cost,) = wsl.drive_costs
    assert (cost.mount, cost.op_ms, cost.root_op_ms) == ("/mnt/c", 0.8, 0.004)
    (project,) = wsl.projects
    assert (project.user, project.path, project.source) == (
        "dev", "/mnt/c/Users/Dev User/src/app", "history")


def test_with_interop_off_the_windows_side_is_unknown_and_says_why() -> None:
    dump = wsl_dump(**{
        "wsl profile": (b"error=cmd.exe not found (interop off or no Windows drive mounted)\n", 0),
        "wsl windows": (b"error=powershell.exe not found\n", 0),
        "wsl path": (b"/usr/bin:/bin", 0),
    })  # fmt: skip
    unknown: list[str] = []
    wsl = parse_wsl(dump, ["dev"], unknown)
    assert wsl.windows_profile is None and wsl.wslconfig is None
    assert "interop off" in str(wsl.windows_error)
    assert any("Windows profile" in u for u in unknown)
    assert wsl.lookup_with_s == [] and wsl.windows_path_entries == []


def test_garbled_measurements_are_dropped_not_guessed() -> None:
    assert lookup_samples("with x\nwith -5\nthen 3\nwithout 2000\n", 2) == ([], [1e-6])
    assert drive_costs("/mnt/c 1 2\n/mnt/d a b 200\n/mnt/e 10 20 0\n") == []
    assert windows_entries("/mnt/cdrom:/mnt/c:/mnt/wsl/x:/mnt/d/Go/bin") == [
        "/mnt/c", "/mnt/d/Go/bin"]


def test_the_apply_time_fact_reads_bytes_and_owner() -> None:
    fact = WslFileBytes()
    assert fact.process(["0", "W2Jvb3RdCg=="]) == {"exists": True, "uid": 0, "data": b"[boot]\n"}
    assert fact.process(["absent"]) == {"exists": False, "uid": None, "data": b""}
    assert fact.process([]) is None  # the command failed: never taken for "absent"
    assert fact.process(["notafile"]) == {"exists": True, "uid": None, "data": None}
    assert "'/mnt/c/Users/O'\"'\"'Brien/.wslconfig'" in fact.command(
        "/mnt/c/Users/O'Brien/.wslconfig")
