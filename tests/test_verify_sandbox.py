"""gotune verify end to end on sandbox hosts, over real SSH, with the real Go toolchain.

A host gets Go on its login PATH through /etc/profile.d (as an install would),
a developer user, and then either a real ``gotune apply`` or a cache pointed
somewhere bad by hand (no plan would ever choose those places). The variants'
verify caches are seeded with a warm standard library (see ``warm_cache``) so
the tests spend their time verifying, not compiling runtime and fmt.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SandboxFactory
from tests.sandbox import SandboxHost
from tests.sandbox_mounts import GOROOT_INSIDE
from tests.test_verify_runner import real_go, warm_cache

__all__ = ["warm_cache"]  # the session fixture, shared with the runner tests

REPO = Path(__file__).resolve().parent.parent


def gotune(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gotune", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def sh(host: SandboxHost, cmd: str, user: str = "root") -> str:
    out = host.run(cmd, user=user, timeout=120)
    assert out.returncode == 0, f"{cmd}: {out.stderr}"
    return out.stdout.strip()


def login(host: SandboxHost, user: str, cmd: str) -> str:
    """Run ``cmd`` in the user's login shell (ssh with a command is not a login shell)."""
    return sh(host, f"bash -lc {shlex.quote(cmd)}", user=user)


def developer(host: SandboxHost, user: str) -> None:
    assert real_go() is not None
    # The harness's read-only copy: the venv's path may be unreadable to users (/root is 0700).
    sh(host, f"echo {shlex.quote(f'export PATH={GOROOT_INSIDE}/bin:$PATH')} > /etc/profile.d/go.sh")
    host.add_user(user)


def seed(host: SandboxHost, user: str, warm: Path, caches: list[str]) -> None:
    for cache in caches:
        q = shlex.quote(cache)
        sh(host, f"mkdir -p {q} && cp -a {shlex.quote(str(warm))}/. {q}/ && chown -R {user}: {q}")


def verify(inventory: Path, *flags: str) -> tuple[int, dict[str, Any]]:
    out = gotune("verify", str(inventory), "--json", *flags)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout)


def failing(host: dict[str, Any]) -> list[str]:
    return [c["name"] for c in host["checks"] if not c["ok"]]


@pytest.mark.sandbox
@pytest.mark.slow
def test_verify_passes_after_apply_and_keeps_the_trend(
    sandbox: SandboxFactory, warm_cache: Path, tmp_path: Path
) -> None:
    sbx = sandbox(1, data=[{"gotune_users": ["alice"]}])
    host = sbx.hosts[0]
    developer(host, "alice")
    applied = gotune("apply", str(sbx.inventory), "--yes", "--json", "--no-verify")
    assert applied.returncode == 0, applied.stderr
    gocache = login(host, "alice", "go env GOCACHE")
    seed(host, "alice", warm_cache, [f"{gocache}/gotune-verify-tuned",
                                     "/home/alice/.cache/go-build/gotune-verify-default"])

    code, result = verify(sbx.inventory, "--bench", "first build (new module),repeat build",
                          "--runs", "3", "--report", str(tmp_path))
    h = result["hosts"][host.name]
    assert failing(h) == [] and h["diagnosis"] == []
    assert code == 0 and h["verdict"] == "pass"
    assert h["expected_from"] == "plan"
    names = [c["name"] for c in h["checks"]]
    assert "alice: go env (login shell)" in names and "alice: go env (non-login shell)" in names
    for b in h["benchmarks"]:
        assert b["tuned"]["runs"] == b["default"]["runs"] == 3
        assert b["target_met"] is True
        assert b["ratio"] > 0
    page = Path(result["report"]).read_text()
    assert host.name in page and "first build (new module)" in page
    # apply installed the agent (it recorded the baseline with it) and verify ran that
    # very build: nothing uploaded, nothing left in /tmp
    assert sh(host, "ls -d /opt/gotune/gotune.pyz /tmp/gotune-agent.* 2>/dev/null || true") == (
        "/opt/gotune/gotune.pyz")

    # the result was kept on the host; the next run brings it back for the trend
    kept = sh(host, "cat /var/lib/gotune/verify/history.jsonl").splitlines()
    assert [json.loads(line)["verdict"] for line in kept] == ["pass"]
    code, again = verify(sbx.inventory, "--bench", "repeat build", "--runs", "1")
    h = again["hosts"][host.name]
    assert [p["verdict"] for p in h["history"]] == ["pass"]
    # One run on a loaded machine (the suite runs 4 at once on 2 CPUs) may miss the
    # 0.3 s target, and verify then says so: what this run checks is the trend, so it
    # only needs the setup sound, the build run, and the exit code to match the verdict.
    assert failing(h) == []
    assert [b["verdict"] for b in h["benchmarks"]] != ["error"]
    assert code == (0 if h["verdict"] == "pass" else 1)


@pytest.mark.sandbox
@pytest.mark.slow
def test_verify_fails_and_names_the_cause_when_a_cache_is_somewhere_bad(
    sandbox: SandboxFactory,
) -> None:
    sbx = sandbox(2, data=[{"gotune_users": ["bob"]}, {"gotune_users": ["carol"]}])
    unwritable, tiny = sbx.hosts
    developer(unwritable, "bob")
    sh(unwritable, "mkdir -p /srv/rootonly/go-build && chmod 755 /srv/rootonly/go-build")
    login(unwritable, "bob", "go env -w GOCACHE=/srv/rootonly/go-build")

    developer(tiny, "carol")
    sh(tiny, "mkdir -p /mnt/tiny && mount -t tmpfs -o size=1m,mode=0755 tmpfs /mnt/tiny"
             " && mkdir /mnt/tiny/go-build && chown carol: /mnt/tiny/go-build")
    tiny.run("dd if=/dev/zero of=/mnt/tiny/go-build/filler bs=64k", user="carol")
    login(tiny, "carol", "go env -w GOCACHE=/mnt/tiny/go-build")

    code, result = verify(sbx.inventory, "--bench", "first build (new module)", "--runs", "1")
    assert code == 1

    bob = result["hosts"][unwritable.name]
    assert bob["verdict"] == "fail"
    assert "bob: GOCACHE owned by bob" in failing(bob)
    causes = {d["cause"]: d["detail"] for d in bob["diagnosis"]}
    assert "permission_denied" in causes
    assert "/srv/rootonly/go-build" in causes["permission_denied"]
    assert "owned by root" in causes["permission_denied"]
    (b,) = bob["benchmarks"]
    assert b["verdict"] == "error" and "denied" in b["error"].lower()

    carol = result["hosts"][tiny.name]
    assert carol["verdict"] == "fail"
    assert "carol: tmpfs /mnt/tiny has room" in failing(carol)
    causes = {d["cause"]: d["detail"] for d in carol["diagnosis"]}
    assert "tmpfs_full" in causes and "/mnt/tiny" in causes["tmpfs_full"]
    (b,) = carol["benchmarks"]
    assert b["verdict"] == "error"
