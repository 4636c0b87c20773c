"""gotune rollout end to end on sandbox hosts: waves, the gate, the budget, resuming.

Every host has a developer user and a GOCACHE on a size-capped tmpfs (so apply really
changes things: fstab, a mount, the GOENV file, a save/restore helper), and Go on its
PATH unless the story needs a host without it: there verify's checks fail, which is the
gate failing for a cause a user can fix and resume from. Benchmarks are left out
(``--bench none``): on sandbox hosts they share this machine's two cores; the one test
of the ``slower`` gate runs the smallest benchmark, on one host, where the slowdown is
large (an HDD against RAM with the page cache dropped).
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import SandboxFactory
from tests.sandbox import SandboxHost
from tests.sandbox_storage import Hdd
from tests.test_apply import REPO, sh

USER = "dev"
TMPFS = {"gotune_users": [USER], "gotune_gocache_tmpfs": "always", "gotune_tmpfs_max_gib": 1}
# Recorded machines of different CPU models and sizes (tests/fixtures/hwloc), and this one.
PROFILES = [None, "16amd64-8n2c", "20em64t-hybrid-1p6c2t+2ca4co1t", "32intel64-2p8co2t+8ve"]
# A port nobody listens on: the host cannot be reached.
CLOSED_PORT = 1
# How long a test waits for a wave to reach the point where it is interrupted.
MID_WAVE_TIMEOUT_S = 180

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def rollout(
    inventory: Path | str, *args: str, bench: str = "none"
) -> tuple[int, dict[str, Any], str]:
    out = subprocess.run(
        [sys.executable, "-m", "gotune", "rollout", str(inventory), "--bench", bench,
         "--yes", "--json", *args],
        capture_output=True, text=True, timeout=900, cwd=REPO,
    )  # fmt: skip
    return out.returncode, json_doc(out.stdout, out.stderr), out.stderr


def json_doc(stdout: str, stderr: str) -> dict[str, Any]:
    """The ``--json`` document a rollout printed; a failed assertion with its stderr when
    it printed none (a traceback, a crash)."""
    assert "Traceback" not in stderr, stderr
    try:
        doc: dict[str, Any] = json.loads(stdout)
    except ValueError:
        raise AssertionError(f"no JSON document on stdout: {stdout[-300:]!r}; "
                             f"stderr: {stderr[-2000:]}") from None
    return doc


def developer(host: SandboxHost, with_go: bool = True) -> None:
    """A developer user; Go on every user's PATH, or no go anywhere on the host."""
    host.add_user(USER)
    if with_go:
        host.link_go()
    else:  # this machine's own go (a distribution package) too, inside this host only
        sh(host, "rm -f /usr/bin/go /usr/local/bin/go")


def upper_files(host: SandboxHost) -> set[str]:
    """Every path the host has written since it started (its overlay's upper layer)."""
    return {str(p.relative_to(host.upper)) for p in host.upper.rglob("*")}


def applied_anything(host: SandboxHost) -> bool:
    # A directory: on a machine gotune tuned, an untouched host's upper layer holds a
    # whiteout there instead (tests/sandbox_machine.py).
    return host.written("/var/lib/gotune").is_dir()


def state_of(doc: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(doc["state"]).read_text())
    return data


def rerun_hosts(doc: dict[str, Any]) -> list[str]:
    tree = ast.parse(Path(doc["rerun_inventory"]).read_text())
    assign = next(n for n in tree.body if isinstance(n, ast.Assign))
    return [name for name, _data in ast.literal_eval(assign.value)]


def gocache_lines_in_fstab(host: SandboxHost) -> list[str]:
    return [ln for ln in sh(host, "cat /etc/fstab").splitlines() if "gotune" in ln]


def test_twelve_hosts_in_three_waves_pass_and_a_second_rollout_changes_nothing(
    sandbox: SandboxFactory, tmp_path: Path
) -> None:
    box = sandbox(12, profiles=PROFILES * 3, data=TMPFS)
    for host in box.hosts:
        developer(host)

    code, doc, _ = rollout(box.inventory, "--waves", "1,3,100%", "--report", str(tmp_path))
    assert code == 0, doc["reason"]
    names = [h.name for h in box.hosts]
    assert [w["hosts"] for w in doc["waves"]] == [names[:1], names[1:4], names[4:]]
    assert [w["passed"] for w in doc["waves"]] == [w["hosts"] for w in doc["waves"]]
    assert not doc["halted"] and doc["reason"] is None and doc["rerun_inventory"] is None
    state = state_of(doc)
    assert state["status"] == "complete"
    for name, host in doc["hosts"].items():
        kept = state["hosts"][name]
        assert host["outcome"] == kept["outcome"] == "passed"
        assert host["wave"] == kept["wave"] and host["changed"] == kept["changed"] > 0
        assert host["verdict"] == kept["verdict"] == "pass" and host["verify"]["checks"]
        assert len(kept["digest"]) == 64
    cpus = {h["hardware"]["cpu"] for h in doc["hosts"].values()}
    assert len(cpus) == len(PROFILES)  # the recorded machines tell apart
    page = Path(doc["report"]).read_text()
    assert all(cpu in page for cpu in cpus)

    code, again, _ = rollout(box.inventory, "--waves", "1,3,100%")
    assert code == 0
    assert {h["changed"] for h in again["hosts"].values()} == {0}
    assert all(not h["skipped"] for h in again["hosts"].values())  # a new rollout, not a resume


def test_a_host_failing_its_gate_halts_the_rollout_is_undone_and_resume_finishes(
    sandbox: SandboxFactory,
) -> None:
    box = sandbox(6, data=TMPFS)
    sbx3, later = box.hosts[2], box.hosts[3:]
    for host in box.hosts:
        developer(host, with_go=host is not sbx3)  # sbx3's developer has no go
    fstab = sh(sbx3, "cat /etc/fstab")
    untouched = {h.name: upper_files(h) for h in later}

    code, doc, progress = rollout(box.inventory, "--waves", "1,2,100%")
    assert code == 1 and doc["halted"]
    assert "sbx3" in doc["reason"] and "--max-fail 0" in doc["reason"]
    # Progress as each phase starts, then each wave's line (stderr under --json).
    lines = [x for x in progress.splitlines() if x.startswith("wave ")]
    assert lines[:4] == [
        "wave 1/3: applying 1 host(s): sbx1", "wave 1/3: verifying 1 host(s): sbx1",
        lines[2], "wave 2/3: applying 2 host(s): sbx2, sbx3"], lines  # fmt: skip
    assert lines[2].startswith("wave 1/3 (canary): 1 host(s): 1 passed")
    assert "wave 2/3: undoing 1 host(s): sbx3" in lines and lines[-1].startswith("wave 2/3: 2 ")
    assert [w["ran"] for w in doc["waves"]] == [True, True, False]
    assert doc["waves"][1]["passed"] == ["sbx2"] and doc["waves"][1]["failed"] == ["sbx3"]
    failed = doc["hosts"]["sbx3"]
    assert failed["outcome"] == "failed" and failed["undone"] is True
    assert any("go not found" in why for why in failed["gate"])
    # undone: the original fstab, no tmpfs, no record of gotune
    assert sh(sbx3, "cat /etc/fstab") == fstab
    assert sh(sbx3, "awk '$3 == \"tmpfs\" && $2 ~ /gotune/' /proc/self/mounts") == ""
    assert sh(sbx3, "test -e /var/lib/gotune/undo || test -e /var/lib/gotune/plan.json "
                    "|| echo clean") == "clean\n"
    # later waves were never touched: not one file written
    for host in later:
        assert upper_files(host) == untouched[host.name] and not applied_anything(host)
        assert doc["hosts"][host.name]["outcome"] == "pending"
    assert rerun_hosts(doc) == ["sbx3"]

    sbx3.link_go()  # the cause, fixed
    code, resumed, _ = rollout(box.inventory, "--resume")
    assert code == 0, resumed["reason"]
    assert [n for n, h in resumed["hosts"].items() if h["skipped"]] == ["sbx1", "sbx2"]
    assert {h["outcome"] for h in resumed["hosts"].values()} == {"passed"}
    assert resumed["rerun_inventory"] is None
    assert not Path(doc["rerun_inventory"]).exists()
    assert all(applied_anything(h) for h in later)


def test_the_budget_counts_failed_and_unreachable_hosts_over_all_waves(
    sandbox: SandboxFactory,
) -> None:
    data = [TMPFS] * 2 + [{**TMPFS, "ssh_port": CLOSED_PORT}] + [TMPFS] * 2
    box = sandbox(5, data=data)
    sbx1 = box.hosts[0]
    for host in box.hosts:
        developer(host, with_go=host is not sbx1)

    code, doc, _ = rollout(box.inventory, "--waves", "1,2,100%", "--max-fail", "1")
    assert code == 1 and doc["halted"]
    # the canary's failure (sbx1) was within the budget; the unreachable sbx3 spent the rest
    assert [w["ran"] for w in doc["waves"]] == [True, True, False]
    assert doc["waves"][0]["failed"] == ["sbx1"] and doc["waves"][1]["failed"] == ["sbx3"]
    assert doc["hosts"]["sbx1"]["outcome"] == "failed" and doc["hosts"]["sbx1"]["undone"]
    assert doc["hosts"]["sbx3"]["outcome"] == "unreachable"
    assert "2 host(s) failed" in doc["reason"] and "sbx1, sbx3" in doc["reason"]
    assert doc["hosts"]["sbx2"]["outcome"] == "passed"
    for host in box.hosts[3:]:
        assert not applied_anything(host) and doc["hosts"][host.name]["outcome"] == "pending"
    assert rerun_hosts(doc) == ["sbx1", "sbx3"]


@pytest.mark.slowstorage
def test_the_slower_gate_halts_where_tuning_made_builds_slower_than_before_and_undoes_it(
    sandbox: SandboxFactory,
) -> None:
    """A fleet that says no tmpfs (``never``, to keep RAM) meets a developer who kept
    GOCACHE on a tmpfs of their own. The plan moves it to persistent storage, the home
    disk, an HDD; with the page cache dropped before every run (the morning after a
    reboot, ``--cold``) the canary's builds are measurably slower than before gotune. No
    check fails, so only the default gate, ``slower``, can stop this: it halts the
    rollout at the canary and undoes it; the next wave is never touched."""
    data = {"gotune_users": [USER], "gotune_gocache_tmpfs": "never"}
    box = sandbox(2, data=data, storage=[[Hdd(path="/home")], None])
    canary, later = box.hosts
    for host in box.hosts:
        developer(host)
    own = "/srv/ram/go-build"
    sh(canary, f"mkdir -p /srv/ram && mount -t tmpfs -o size=1g tmpfs /srv/ram && "
               f"mkdir {own} && chown {USER}: {own}")  # fmt: skip
    sh(canary, f"go env -w GOCACHE={own}", user=USER)
    untouched = upper_files(later)

    code, doc, _ = rollout(box.inventory, "--waves", "1,100%", "--runs", "5", "--cold",
                           bench="repeat build")  # fmt: skip
    assert code == 1 and doc["halted"], doc["reason"]
    assert [w["ran"] for w in doc["waves"]] == [True, False]
    failed = doc["hosts"]["sbx1"]
    assert failed["outcome"] == "failed" and failed["undone"] is True, failed
    assert not [c for c in failed["verify"]["checks"] if not c["ok"]]  # only the gate
    assert any("tuned is slower than the setup before gotune" in why
               for why in failed["gate"]), failed["gate"]
    # undone: the developer's own tmpfs GOCACHE again
    assert sh(canary, "go env GOCACHE", user=USER).strip() == own
    assert upper_files(later) == untouched and not applied_anything(later)
    assert doc["hosts"]["sbx2"]["outcome"] == "pending"
    assert rerun_hosts(doc) == ["sbx1"]
    print(f"slower gate: {failed['gate']}")


def _start(inventory: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gotune", "rollout", str(inventory), "--waves", "1,2,100%",
         "--bench", "none", "--yes", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip


def _wait_mid_apply(proc: subprocess.Popen[str], host: SandboxHost) -> None:
    """Until apply has begun changing ``host`` (its undo records exist)."""
    deadline = time.monotonic() + MID_WAVE_TIMEOUT_S
    while not host.written("/var/lib/gotune/undo").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the second wave never started"
        time.sleep(0.05)


def _fleet(box: Any) -> tuple[dict[str, str], Path]:
    for host in box.hosts:
        developer(host)
    fstabs = {h.name: sh(h, "cat /etc/fstab") for h in box.hosts}
    return fstabs, Path(str(box.inventory).removesuffix(".py") + ".rollout.json")


def test_a_rollout_killed_mid_wave_resumes_without_applying_twice_or_skipping(
    sandbox: SandboxFactory,
) -> None:
    box = sandbox(4, data=TMPFS)
    fstabs, state_path = _fleet(box)
    sbx1, sbx2 = box.hosts[:2]

    proc = _start(box.inventory)
    _wait_mid_apply(proc, sbx2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    killed = json.loads(state_path.read_text())
    assert killed["status"] == "running"
    assert killed["hosts"]["sbx1"]["outcome"] == "passed"
    assert {killed["hosts"][n]["outcome"] for n in ("sbx2", "sbx3")} == {"applying"}
    assert killed["hosts"]["sbx4"]["outcome"] == "pending"
    canary_plan = os.stat(sbx1.written("/var/lib/gotune/plan.json")).st_mtime_ns

    code, resumed, _ = rollout(box.inventory, "--resume")
    assert code == 0, resumed["reason"]
    assert [n for n, h in resumed["hosts"].items() if h["skipped"]] == ["sbx1"]
    assert {h["outcome"] for h in resumed["hosts"].values()} == {"passed"}
    assert os.stat(sbx1.written("/var/lib/gotune/plan.json")).st_mtime_ns == canary_plan
    assert len(gocache_lines_in_fstab(sbx2)) == 1  # applied again, not twice over
    # what apply recorded for undo is what was there before the first, killed, apply
    out = subprocess.run([sys.executable, "-m", "gotune", "undo", str(box.inventory), "--yes"],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert {h.name: sh(h, "cat /etc/fstab") for h in box.hosts} == fstabs


def test_ctrl_c_mid_wave_stops_the_rollout_and_resume_finishes(sandbox: SandboxFactory) -> None:
    box = sandbox(4, data=TMPFS)
    _fleet(box)
    proc = _start(box.inventory)
    _wait_mid_apply(proc, box.hosts[1])
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    doc = json_doc(stdout, stderr)
    assert proc.returncode == 1, stderr
    assert doc["interrupted"] and doc["reason"] == "interrupted (Ctrl-C)"
    assert state_of(doc)["status"] == "interrupted"
    assert doc["hosts"]["sbx4"]["outcome"] == "pending" and not applied_anything(box.hosts[3])

    code, resumed, _ = rollout(box.inventory, "--resume")
    assert code == 0, resumed["reason"]
    assert [n for n, h in resumed["hosts"].items() if h["skipped"]] == ["sbx1"]
    assert {h["outcome"] for h in resumed["hosts"].values()} == {"passed"}


def test_a_lost_ssh_connection_fails_the_host_and_resume_finishes(
    sandbox: SandboxFactory,
) -> None:
    box = sandbox(4, data=TMPFS)
    fstabs, _ = _fleet(box)
    sbx2 = box.hosts[1]
    proc = _start(box.inventory)
    _wait_mid_apply(proc, sbx2)
    assert sbx2.pid is not None
    for session in psutil.Process(sbx2.pid).children():  # sshd's per-connection processes
        session.kill()
    stdout, stderr = proc.communicate(timeout=300)
    doc = json_doc(stdout, stderr)
    assert proc.returncode == 1, stderr
    lost = doc["hosts"]["sbx2"]
    assert doc["halted"] and lost["outcome"] == "failed" and lost["gate"][0].startswith("apply:")
    assert lost["undone"] is True and sh(sbx2, "cat /etc/fstab") == fstabs["sbx2"]
    assert doc["hosts"]["sbx4"]["outcome"] == "pending"
    assert rerun_hosts(doc) == ["sbx2"]

    code, resumed, _ = rollout(box.inventory, "--resume")
    assert code == 0, resumed["reason"]
    assert {h["outcome"] for h in resumed["hosts"].values()} == {"passed"}


# Runs ``gotune rollout ARGS`` for each ARGS of a JSON list in one interpreter; prints
# [[exit status, stderr], ...].
EACH_COMMAND_LINE = """
import contextlib, io, json, sys
from gotune.cli import main
out = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["rollout", *argv])
        except SystemExit as exc:
            code = exc.code
    out.append([code, err.getvalue()])
print(json.dumps(out))
"""


def each_command_line(argvs: list[list[str]]) -> list[tuple[int, str]]:
    """(exit status, stderr) of ``gotune rollout ARGV`` for each ARGV."""
    out = subprocess.run([sys.executable, "-c", EACH_COMMAND_LINE, json.dumps(argvs)],
                         capture_output=True, text=True, timeout=300, cwd=REPO, check=True)
    return [(code, err) for code, err in json.loads(out.stdout)]


def test_bad_input_is_one_line_and_touches_nothing(sandbox: SandboxFactory, tmp_path: Path) -> None:
    box = sandbox(1, data=TMPFS)
    host = box.hosts[0]
    developer(host)
    before = upper_files(host)
    other = tmp_path / "other.py"
    other.write_text(box.inventory.read_text())
    foreign = tmp_path / "foreign.rollout.json"
    code, _, _ = rollout(other, "--state", str(foreign), "--dry")
    assert code == 0 and not foreign.exists()  # --dry writes no state either
    subprocess.run([sys.executable, "-c", (
        "import sys; sys.path.insert(0, '.'); from gotune.rollout import state as st; "
        f"st.start(__import__('pathlib').Path({str(foreign)!r}), "
        f"st.Identity.of({str(other)!r}, ['sbx1']), {{'sbx1': 1}}, {{'sbx1': 'x'}}).save()")],
        check=True, cwd=REPO)  # fmt: skip
    cases = [
        (["--waves", "0"], "--waves: '0'"), (["--waves=-1"], "--waves: '-1'"),
        (["--waves", "150%"], "--waves: '150%'"), (["--waves", "abc"], "--waves: 'abc'"),
        (["--max-fail", "many"], "--max-fail: 'many'"), (["--max-fail", "-1"], "--max-fail"),
        (["--gate", "faster"], "invalid choice"), (["--runs", "0"], "--runs"),
        (["--project", "src"], "--project src: give the absolute path"),
        (["--state", str(foreign)], "records the rollout of"),
        (["--state", str(foreign), "--resume"], "records the rollout of"),
        (["--state", str(tmp_path / "none.json"), "--resume"], "no rollout to resume"),
    ]  # fmt: skip
    for (args, message), (code, err) in zip(cases, each_command_line(
            [[str(box.inventory), "--yes", *args] for args, _ in cases]), strict=True):
        assert code == 2, (args, err)
        assert message in err and err.count("\n") == 1, (args, err)
    assert upper_files(host) == before
    assert not (box.inventory.parent / "inventory.rollout.json").exists()
