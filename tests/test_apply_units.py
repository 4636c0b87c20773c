"""The pieces apply runs on a host, run here for real: moving a cache, the tmpfs
GOCACHE helper (save, restore, trim), GOENV editing, unit names."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from gotune.operations.caches import (
    TRIM_ABOVE_PERCENT,
    TRIM_TO_PERCENT,
    fstab_line,
    move_cmd,
    systemd_escape_path,
    tmpfs_options,
)
from gotune.operations.goenv import updated
from gotune.operations.render import render
from gotune.operations.state import as_user_cmd

ME = pwd.getpwuid(os.geteuid()).pw_name
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, unshare -m)")


def module_cache(root: Path) -> Path:
    """A GOMODCACHE as Go leaves it: read-only files and directories."""
    mod = root / "mod"
    pkg = mod / "example.com" / "m@v1.0.0"
    pkg.mkdir(parents=True)
    (pkg / "go.mod").write_text("module example.com/m\n")
    (pkg / "m.go").write_text("package m\n")
    (mod / "cache" / "download").mkdir(parents=True)
    (mod / "cache" / "download" / "list").write_text("v1.0.0\n")
    subprocess.run(["chmod", "-R", "a-w", str(mod / "example.com")], check=True)
    return mod


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def run_sh(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)


def test_move_on_the_same_filesystem_is_a_rename(tmp_path: Path) -> None:
    src = module_cache(tmp_path / "a")
    want = tree(src)
    inode = src.stat().st_ino
    (tmp_path / "b").mkdir()
    out = run_sh(move_cmd(str(src), str(tmp_path / "b" / "mod"), ME, "GOMODCACHE"))
    assert out.returncode == 0, out.stderr
    assert not src.exists()
    assert tree(tmp_path / "b" / "mod") == want
    assert (tmp_path / "b" / "mod").stat().st_ino == inode


@needs_root
def test_move_across_filesystems_copies_verifies_then_deletes_read_only_files(
    tmp_path: Path,
) -> None:
    src = module_cache(tmp_path / "a")
    want = tree(src)
    dst_parent = tmp_path / "other"
    dst_parent.mkdir()
    # A private mount namespace: the tmpfs is another filesystem and vanishes with the shell.
    script = (
        f"mount -t tmpfs -o size=8m tmpfs {dst_parent} && "
        f"{{ {move_cmd(str(src), str(dst_parent / 'mod'), ME, 'GOMODCACHE')}\n}} && "
        f"find {dst_parent}/mod -type f | sort | xargs cat"
    )
    out = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert not src.exists()
    assert sorted(out.stdout.splitlines()) == sorted("".join(want.values()).splitlines())


@needs_root
def test_move_without_room_stops_before_anything_moves(tmp_path: Path) -> None:
    src = module_cache(tmp_path / "a")
    (src / "big").write_bytes(os.urandom(2 * 1024 * 1024))
    want = tree_bytes(src)
    dst_parent = tmp_path / "small"
    dst_parent.mkdir()
    script = (
        f"mount -t tmpfs -o size=1m tmpfs {dst_parent} && "
        f"{{ {move_cmd(str(src), str(dst_parent / 'mod'), ME, 'GOMODCACHE')}\n}}; rc=$?; "
        f"ls -A {dst_parent}; exit $rc"
    )
    out = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1
    assert "not enough room" in out.stderr and "nothing moved" in out.stderr
    assert out.stdout == ""
    assert tree_bytes(src) == want


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_move_refuses_to_merge_into_a_non_empty_destination(tmp_path: Path) -> None:
    src = module_cache(tmp_path / "a")
    dst = tmp_path / "b" / "mod"
    dst.mkdir(parents=True)
    (dst / "keep").write_text("x")
    out = run_sh(move_cmd(str(src), str(dst), ME, "GOMODCACHE"))
    assert out.returncode == 1 and "both" in out.stderr
    assert src.exists() and (dst / "keep").read_text() == "x"


def test_move_refuses_a_tree_not_the_users_or_not_a_go_cache(tmp_path: Path) -> None:
    """The path came from the user's go env and root moves it: GOMODCACHE=/etc, or a
    whole home, stays where it is."""
    src = module_cache(tmp_path / "a")
    other = next(p.pw_name for p in pwd.getpwall() if p.pw_uid != os.geteuid())
    out = run_sh(move_cmd(str(src), str(tmp_path / "b"), other, "GOMODCACHE"))
    assert out.returncode == 1 and f"not owned by {other}; nothing moved" in out.stderr
    assert (src / "cache" / "download" / "list").exists() and not (tmp_path / "b").exists()

    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    for key in ("GOMODCACHE", "GOCACHE"):
        out = run_sh(move_cmd(str(etc), str(tmp_path / "b"), ME, key))
        assert out.returncode == 1 and "does not look like a Go cache" in out.stderr
        assert (etc / "passwd").exists() and not (tmp_path / "b").exists()
    # A build cache the helper kept (trim.txt, no README) and an empty one do move.
    (tmp_path / "gc").mkdir()
    (tmp_path / "gc" / "trim.txt").write_text("1\n")
    assert run_sh(move_cmd(str(tmp_path / "gc"), str(tmp_path / "gc2"), ME, "GOCACHE")
                  ).returncode == 0  # fmt: skip
    (tmp_path / "empty").mkdir()
    assert run_sh(move_cmd(str(tmp_path / "empty"), str(tmp_path / "e2"), ME, "GOCACHE")
                  ).returncode == 0  # fmt: skip
    assert (tmp_path / "gc2" / "trim.txt").exists() and (tmp_path / "e2").is_dir()


def test_missing_source_is_nothing_to_move(tmp_path: Path) -> None:
    out = run_sh(move_cmd(str(tmp_path / "none"), str(tmp_path / "dst"), ME, "GOMODCACHE"))
    assert out.returncode == 0 and not (tmp_path / "dst").exists()


@pytest.fixture
def helper(tmp_path: Path) -> Path:
    path = tmp_path / "gotune-gocache"
    path.write_text(
        render("caches-helper.sh.j2", trim_above=TRIM_ABOVE_PERCENT, trim_to=TRIM_TO_PERCENT)
    )
    path.chmod(0o755)
    return path


def go_cache(root: Path, entries: int, kib: int) -> list[Path]:
    """A GOCACHE-shaped tree: entries in two-hex subdirs, oldest first by mtime."""
    made = []
    for i in range(entries):
        sub = root / f"{i % 256:02x}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"{i:064x}-d"
        path.write_bytes(b"x" * kib * 1024)
        os.utime(path, (1_000_000 + i * 3600, 1_000_000 + i * 3600))
        made.append(path)
    (root / "README").write_text("go cache\n")
    return made


def test_trim_deletes_least_recently_used_entries_first(tmp_path: Path, helper: Path) -> None:
    cache = tmp_path / "tmpfs" / "go-build"
    made = go_cache(cache, 40, 64)  # 2560 KiB of entries
    mtimes = {p: p.stat().st_mtime for p in made}
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    out = subprocess.run(
        [str(helper), "trim", user, str(cache), str(tmp_path / "s.tar"), "2048"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    kept = [p for p in made if p.exists()]
    gone = [p for p in made if not p.exists()]
    assert gone and kept
    assert max(mtimes[p] for p in gone) < min(mtimes[p] for p in kept)
    used = int(
        subprocess.run(["du", "-sk", str(cache)], capture_output=True, text=True).stdout.split()[0]
    )
    assert used <= 2048 * TRIM_TO_PERCENT // 100 + 64
    assert (cache / "README").exists()  # Go's own top-level files are never trimmed


def test_save_then_restore_brings_a_cache_back_after_a_reboot(tmp_path: Path, helper: Path) -> None:
    cache = tmp_path / "tmpfs" / "go-build"
    go_cache(cache, 10, 4)
    want = tree_bytes(cache)
    snapshot = tmp_path / "disk" / "go-build.tar"
    snapshot.parent.mkdir()
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    args = [user, str(cache), str(snapshot), str(1024 * 1024)]
    assert subprocess.run([str(helper), "save", *args], timeout=60).returncode == 0
    assert snapshot.is_file() and not Path(f"{snapshot}.gotune-new").exists()
    shutil.rmtree(tmp_path / "tmpfs")  # the reboot: RAM is gone
    (tmp_path / "tmpfs").mkdir()
    assert subprocess.run([str(helper), "restore", *args], timeout=60).returncode == 0
    assert tree_bytes(cache) == want
    assert (tmp_path / "tmpfs" / "tmp").is_dir()  # GOTMPDIR is made again too


def test_goenv_update_keeps_other_settings_and_removes_unset_keys() -> None:
    lines = ["GOPROXY=https://p.example", "GOCACHE=/old", "GOTMPDIR=/x", "# odd line"]
    new = updated(lines, {"GOCACHE": "/new", "GOMODCACHE": "/mod", "GOTMPDIR": None})
    assert new == ["GOPROXY=https://p.example", "GOCACHE=/new", "# odd line", "GOMODCACHE=/mod"]
    assert updated(new, {"GOCACHE": "/new", "GOMODCACHE": "/mod"}) == new


def test_mount_unit_names_match_systemd_escape() -> None:
    assert systemd_escape_path("/var/cache/gotune/tmpfs/dev") == "var-cache-gotune-tmpfs-dev"
    assert (
        systemd_escape_path("/var/cache/gotune/tmpfs/dev-ops")
        == "var-cache-gotune-tmpfs-dev\\x2dops"
    )
    if shutil.which("systemd-escape"):
        for path in ("/var/cache/gotune/tmpfs/a_b", "/x/y-z"):
            out = subprocess.run(["systemd-escape", "--path", path], capture_output=True, text=True)
            assert systemd_escape_path(path) == out.stdout.strip()


def test_tmpfs_is_capped_private_and_owned() -> None:
    options = tmpfs_options(2 * 1024**3, 1001, 1002)
    assert "size=2048m" in options and "mode=0700" in options
    assert "uid=1001" in options and "gid=1002" in options
    assert fstab_line("/m", options).split() == ["tmpfs", "/m", "tmpfs", options, "0", "0"]


def test_systemd_units_save_before_the_tmpfs_goes_and_restore_after_it_comes() -> None:
    values = {
        "user": "dev",
        "command": "/usr/local/sbin/gotune-gocache",
        "args": "dev /c /s 1024",
        "minutes": 30,
        "mount_unit": "var-cache-gotune-tmpfs-dev.mount",
    }
    service = render("caches-snapshot.service.j2", **values)
    assert "Requires=var-cache-gotune-tmpfs-dev.mount" in service
    assert "After=var-cache-gotune-tmpfs-dev.mount" in service  # stopped (saved) before unmount
    assert "ExecStart=/usr/local/sbin/gotune-gocache restore dev /c /s 1024" in service
    assert "ExecStop=/usr/local/sbin/gotune-gocache save dev /c /s 1024" in service
    timer = render("caches-save.timer.j2", **values)
    assert "OnUnitActiveSec=30min" in timer
    mount = render(
        "caches-tmpfs.mount.j2",
        user="dev",
        mountpoint="/var/cache/gotune/tmpfs/dev",
        options=tmpfs_options(1024**3, 1000, 1000),
    )
    assert "Where=/var/cache/gotune/tmpfs/dev" in mount and "size=1024m" in mount


def test_the_verify_after_apply_is_for_the_developer_user_apply_was_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gotune.commands import apply

    seen: list[list[str]] = []

    def fake_run(argv: list[str], **_kw: object) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 0, '{"hosts": {}}', "")

    monkeypatch.setattr(apply.subprocess, "run", fake_run)
    assert apply.run_verify("fleet.py", "alice")["ok"] is True
    assert apply.run_verify(None)["ok"] is True
    assert seen[0][3:] == ["verify", "fleet.py", "--json", "--user", "alice"]
    assert "--user" not in seen[1]


def test_pyinfra_errors_are_collected_per_host_and_never_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import logging

    from gotune.commands.apply import NOT_RUN, quiet

    log = logging.getLogger("pyinfra.api.facts")  # where pyinfra's fact errors come from
    root = logging.getLogger("pyinfra")
    before = (root.level, root.propagate, list(root.handlers))
    seen: list[str] = []
    spy = logging.Handler()
    spy.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger().addHandler(spy)  # a root handler (pytest's, an embedding program's)
    try:
        with quiet() as errors:
            log.error("\x1b[1m[sbx1]\x1b[0m  Error: could not load fact: pacman.PacmanPackages ")
            log.error("[web-2] \x1b[31mpermission denied\x1b[0m")
            log.warning("[sbx1] a warning is not an error")
            log.error("no host prefix: not a host's")
            print("pyinfra's progress")
    finally:
        logging.getLogger().removeHandler(spy)
    assert errors.why("sbx1") == "Error: could not load fact: pacman.PacmanPackages"
    assert errors.why("web-2") == "permission denied"
    assert errors.why("sbx9") == NOT_RUN
    assert seen == []  # nothing reached the root logger's handlers
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert (root.level, root.propagate, list(root.handlers)) == before


def test_unit_and_cron_lines_escape_percent_and_refuse_newlines() -> None:
    """A home like /home/50%dev: systemd would expand %d, cron would cut the line at %; a
    newline would start a setting (or a job) of its own, run by root."""
    values = {"user": "dev", "command": "/usr/local/sbin/gotune-gocache",
              "args": "dev /c '/home/50%dev/.cache/gotune/go-build.tar' 1024", "minutes": 30,
              "mount_unit": "var-cache-gotune-tmpfs-dev.mount"}  # fmt: skip
    service = render("caches-snapshot.service.j2", **values)
    assert "ExecStart=/usr/local/sbin/gotune-gocache restore dev /c '/home/50%%dev/" in service
    assert "\nUser=dev\n" in service  # the helper runs as the cache's user
    cron = render("caches-snapshot.cron.j2", save_schedule="*/30 * * * *",
                  trim_schedule="*/5 * * * *", **values)  # fmt: skip
    assert "\n@reboot dev /usr/local/sbin/gotune-gocache restore dev /c '/home/50\\%dev/" in cron
    assert " root " not in cron
    for template in ("caches-snapshot.service.j2", "caches-save.service.j2"):
        with pytest.raises(ValueError, match="control character"):
            render(template, **{**values, "args": "dev /c '/x\nExecStartPre=/evil' 1"})
    with pytest.raises(ValueError, match="control character"):
        render("caches-snapshot.cron.j2", save_schedule="*/30 * * * *",
               trim_schedule="*/5 * * * *", **{**values, "args": "x\n* * * * * root id"})


@needs_root
@pytest.mark.parametrize("path", ["/usr/sbin:/usr/bin:/sbin:/bin", "/usr/bin:/bin"])
def test_as_user_runs_as_the_user_with_runuser_or_else_su(path: str) -> None:
    """runuser where it is on PATH (util-linux), else su: both give the user's identity
    and pass stdin through (a file's content goes to the user that way)."""
    script = as_user_cmd("nobody", 'printf "%s %s" "$(id -un)" "$(cat)"')
    out = subprocess.run(["sh", "-c", script], input="hello", capture_output=True, text=True,
                         timeout=60, env={"PATH": path})  # fmt: skip
    assert (out.returncode, out.stdout) == (0, "nobody hello"), out.stderr
    uses_runuser = shutil.which("runuser", path=path) is not None
    assert uses_runuser == (path.startswith("/usr/sbin") and shutil.which("runuser") is not None)
