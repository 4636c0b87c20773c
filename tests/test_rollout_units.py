"""The rollout's rules without hosts: waves, the budget, the gate, the state file, the
re-run inventory and the fleet report.

Verify results come from the runner's raw observations through verify's own pipeline
(``host_result``, as in test_verify_rules.py), so the gate reads what a real host gives.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from gotune.errors import UsageError
from gotune.rollout import state as st
from gotune.rollout.gate import GATE_FAIL, GATE_SLOWER, judge
from gotune.rollout.inventory import rerun_path, rerun_text
from gotune.rollout.report import render
from gotune.rollout.run import compact_benchmarks
from gotune.rollout.waves import parse_budget, parse_waves, serving_first, split
from gotune.settings import validate_host_data
from gotune.verify.result import host_result
from tests.test_verify_report import HOSTILE, _Page
from tests.test_verify_rules import disk, raw_host

NAMES = [f"h{i:02d}" for i in range(1, 25)]
APPLIED = {"ok": True, "changed": 3}


def sizes(spec: str, fleet: int) -> list[int]:
    return [len(w) for w in split(NAMES[:fleet], parse_waves(spec))]


# --- waves and budget -------------------------------------------------------------------------


def test_waves_are_counts_and_percentages_of_the_whole_fleet_and_the_last_repeats() -> None:
    assert sizes("1,3,100%", 12) == [1, 3, 8]
    assert sizes("1,25%,100%", 24) == [1, 6, 17]
    assert sizes("2", 5) == [2, 2, 1]
    assert sizes("1,10%,100%", 5) == [1, 1, 3]  # 10% of 5 is half a host: at least one
    assert sizes("50%", 3) == [1, 1, 1]
    assert split(NAMES[:4], parse_waves("1,100%")) == [["h01"], ["h02", "h03", "h04"]]


def test_build_cache_sites_then_builders_go_first_everyone_else_keeps_inventory_order() -> None:
    site = {"gotune_buildcache_server": True}
    lan_mirror = {"gotune_mirror_enabled": True, "gotune_mirror_listen": "10.0.0.5",
                  "gotune_mirror_allow": ["10.0.0.0/24"]}
    data: dict[str, dict[str, Any]] = {
        "h01": {"gotune_buildcache_url": "http://10.0.0.5:3001"},
        "h02": {"gotune_buildcache_builder": True}, "h03": {},
        "h04": site, "h05": lan_mirror,  # a mirror serving a LAN is a site by default
        "h06": {**lan_mirror, "gotune_buildcache_server": False},
    }
    settings = {name: validate_host_data(d, name) for name, d in data.items()}
    order = serving_first(list(data), settings)
    assert order == ["h04", "h05", "h02", "h01", "h03", "h06"]
    waves = split(order, parse_waves("1,1,100%"))
    assert waves == [["h04"], ["h05"], ["h02", "h01", "h03", "h06"]]
    plain = {name: validate_host_data({}, name) for name in NAMES[:5]}
    assert serving_first(NAMES[:5], plain) == NAMES[:5]


@pytest.mark.parametrize("spec", ["0", "-1", "150%", "abc", "0%", "1.5", "1,,2", "", "1, 2x"])
def test_a_wave_list_that_is_not_counts_or_percentages_is_refused(spec: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_waves(spec)
    assert "--waves" in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == 2


def test_the_budget_is_a_count_or_a_percentage_of_the_fleet_rounded_down() -> None:
    assert parse_budget("0", 12).allowed == 0
    assert parse_budget("2", 12).allowed == 2
    assert parse_budget("10%", 12).allowed == 1
    assert parse_budget("5%", 12).allowed == 0
    budget = parse_budget("1", 12)
    assert not budget.exceeded(1) and budget.exceeded(2)
    for bad in ("x", "-1", "150%", "1.5", ""):
        with pytest.raises(UsageError, match="--max-fail"):
            parse_budget(bad, 12)


# --- the gate ---------------------------------------------------------------------------------


def test_a_host_that_applied_and_verified_clean_passes_either_gate() -> None:
    verified = host_result(raw_host(GOCACHE=disk("/c")))
    assert verified["verdict"] == "pass"
    assert judge(APPLIED, verified, GATE_SLOWER) == judge(APPLIED, verified, GATE_FAIL) == []


def test_a_slower_benchmark_closes_only_the_slower_gate() -> None:
    raw = raw_host(GOCACHE=disk("/c"))
    first = raw["users"]["alice"]["benchmarks"][0]["samples"]
    first["tuned"], first["default"] = first["default"], first["tuned"]
    verified = host_result(raw)
    assert verified["benchmarks"][0]["verdict"] == "slower"
    (reason,) = judge(APPLIED, verified, GATE_SLOWER)
    assert "first build (new module): tuned is slower than Go's defaults" in reason
    assert "default ÷ tuned 0.5" in reason
    assert judge(APPLIED, verified, GATE_FAIL) == []


def test_the_slower_gate_judges_against_the_setup_before_gotune_where_apply_recorded_it() -> None:
    raw = raw_host(GOCACHE=disk("/c"))
    first = raw["users"]["alice"]["benchmarks"][0]["samples"]
    first["before"] = [0.15, 0.16, 0.15, 0.14, 0.15]  # the user's own setup was faster
    verified = host_result(raw)
    bench = verified["benchmarks"][0]
    assert bench["verdict"] == "faster" and bench["verdicts"]["before"] == "slower"
    (reason,) = judge(APPLIED, verified, GATE_SLOWER)
    assert "tuned is slower than the setup before gotune (before ÷ tuned 0.5" in reason
    assert judge(APPLIED, verified, GATE_FAIL) == []
    kept = compact_benchmarks(verified)[0]  # what the state file and the report keep
    assert kept["baseline"] == "before" and kept["baseline_verdict"] == "slower"
    assert kept["before_s"] == 0.15 and kept["ratio"] == 2.0
    first["before"] = [0.61, 0.60, 0.62, 0.59, 0.60]  # before gotune: as slow as Go's defaults
    assert judge(APPLIED, host_result(raw), GATE_SLOWER) == []


def test_a_failed_check_or_a_benchmark_that_could_not_run_closes_both_gates() -> None:
    raw = raw_host(GOCACHE=disk("/c", writable=False, write_errno="EACCES"))
    raw["users"]["alice"]["benchmarks"][1]["error"] = "permission denied"
    verified = host_result(raw)
    for gate in (GATE_FAIL, GATE_SLOWER):
        reasons = judge(APPLIED, verified, gate)
        assert any(r.startswith("check alice: GOCACHE") for r in reasons)
        assert "benchmark repeat build: permission denied" in reasons


def test_a_missed_target_is_reported_by_verify_but_does_not_close_the_gate() -> None:
    raw = raw_host(GOCACHE=disk("/c"))
    raw["users"]["alice"]["benchmarks"][1]["target_s"] = 0.01  # nothing builds in 10 ms
    verified = host_result(raw)
    assert verified["verdict"] == "fail"
    assert judge(APPLIED, verified, GATE_SLOWER) == []


def test_a_failed_apply_fails_the_host_before_verify_is_read() -> None:
    assert judge({"ok": False, "error": "files.put: disk full"}, None, GATE_SLOWER) == [
        "apply: files.put: disk full"]
    assert judge(APPLIED, None, GATE_SLOWER) == ["not verified"]


# --- the state file ---------------------------------------------------------------------------


def _inventory(tmp_path: Path, name: str = "fleet.py") -> Path:
    path = tmp_path / name
    path.write_text("hosts = ['a', 'b']\n")
    return path


def test_the_state_file_is_written_whole_and_read_back_for_the_same_inventory(
    tmp_path: Path,
) -> None:
    inv = _inventory(tmp_path)
    ident = st.Identity.of(str(inv), ["a", "b"])
    path = st.default_path(str(inv))
    assert path == tmp_path / "fleet.rollout.json"
    state = st.start(path, ident, {"a": 1, "b": 2}, {"a": "d1", "b": "d2"}, waves="1,100%")
    state.save()
    state.update("a", outcome=st.PASSED, changed=4)
    # written by a rename: no temporary file is left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.py", "fleet.rollout.json"]
    again = st.read(path, ident, resume=True)
    assert again is not None
    assert again.hosts["a"]["outcome"] == st.PASSED and again.hosts["b"]["wave"] == 2
    assert again.doc["waves"] == "1,100%"
    assert st.read(path, ident, resume=False) is None  # a new rollout starts over


def test_a_state_file_of_another_inventory_is_refused(tmp_path: Path) -> None:
    inv, other = _inventory(tmp_path), _inventory(tmp_path, "other.py")
    path = tmp_path / "shared.json"
    st.start(path, st.Identity.of(str(inv), ["a", "b"]), {"a": 1, "b": 1},
             {"a": "d", "b": "d"}).save()
    for resume in (True, False):
        with pytest.raises(UsageError, match=r"records the rollout of .*fleet\.py, not of"):
            st.read(path, st.Identity.of(str(other), ["a", "b"]), resume)
    changed = st.Identity.of(str(inv), ["a", "b", "c"])
    with pytest.raises(UsageError, match=r"hosts of .* changed"):
        st.read(path, changed, resume=True)
    assert st.read(path, changed, resume=False) is None


def test_resume_needs_a_state_file_and_a_real_one(tmp_path: Path) -> None:
    ident = st.Identity.of(str(_inventory(tmp_path)), ["a"])
    with pytest.raises(UsageError, match="no rollout to resume"):
        st.read(tmp_path / "none.json", ident, resume=True)
    junk = tmp_path / "junk.json"
    junk.write_text('{"some": "thing"}')
    with pytest.raises(UsageError, match="not a gotune rollout state file"):
        st.read(junk, ident, resume=True)


# --- the re-run inventory ---------------------------------------------------------------------


def test_the_rerun_inventory_is_a_pyinfra_file_of_the_failed_hosts_with_their_data() -> None:
    data = {"ssh_port": 2222, "gotune_users": ["dev"], "hook": object()}
    text = rerun_text([("web1", data, "failed: check dev: go not found\nsecond line")])
    tree = ast.parse(text)
    assign = next(n for n in tree.body if isinstance(n, ast.Assign))
    assert ast.literal_eval(assign.value) == [("web1", {"gotune_users": ["dev"], "ssh_port": 2222})]
    assert "# failed: check dev: go not found second line" in text
    assert "# data 'hook' left out: not a plain value" in text
    assert rerun_path(Path("/x/fleet.rollout.json")) == Path("/x/fleet.rerun.py")
    assert rerun_path(Path("/x/state.json")) == Path("/x/state.rerun.py")


# --- the fleet report -------------------------------------------------------------------------


def _host(wave: int, label: str, ratio: float, verdict: str) -> dict[str, Any]:
    return {"wave": wave, "outcome": "passed", "changed": 3, "verdict": "pass", "gate": [],
            "hardware": {"label": label},
            "benchmarks": [{"name": "repeat build", "ratio": ratio, "verdict": verdict}]}


def test_the_report_groups_each_benchmarks_ratios_by_hardware_class_and_escapes_hosts() -> None:
    hosts = {
        "nvme1": _host(1, "Xeon · nvme · 64 GiB", 1.8, "faster"),
        "nvme2": _host(2, "Xeon · nvme · 64 GiB", 1.6, "faster"),
        "hdd1": _host(2, "Core i5 · hdd · 8 GiB", 1.0, "no measurable difference"),
        HOSTILE: {**_host(2, HOSTILE, 0.7, "slower"), "outcome": "failed", "gate": [HOSTILE]},
    }
    doc = {"waves": [{"number": 1, "hosts": ["nvme1"], "passed": ["nvme1"], "failed": [],
                      "pending": [], "skipped": [], "ran": True, "elapsed_s": 3.0},
                     {"number": 2, "hosts": list(hosts)[1:], "passed": ["nvme2", "hdd1"],
                      "failed": [HOSTILE], "pending": [], "skipped": [], "ran": True,
                      "elapsed_s": 5.0}],
           "halted": True, "interrupted": False, "reason": "1 host(s) failed", "hosts": hosts,
           "elapsed_s": 8.0}  # fmt: skip
    html = render(doc, generated=0)
    page = _Page(html)
    text = " ".join(page.text)
    assert HOSTILE not in html and "alert" in text  # shown as text, never run
    assert page.links == [] and [s.get("type") for s in page.scripts] == ["application/json"]
    assert "3 of 4 hosts passed" in text and "Stopped: 1 host(s) failed" in text
    assert "Xeon · nvme · 64 GiB (n=2)" in text and "Core i5 · hdd · 8 GiB (n=1)" in text
    assert html.count("<circle") == 4
    assert "nvme1: 1.80×" in text
    data = html.split('id="gotune-rollout-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(data)["hosts"]["hdd1"]["hardware"]["label"] == "Core i5 · hdd · 8 GiB"


def test_a_rollout_without_benchmarks_says_so_in_the_report() -> None:
    doc = {"waves": [], "halted": False, "interrupted": False, "reason": None,
           "hosts": {"a": {**_host(1, "x", 1.0, "faster"), "benchmarks": []}}}
    assert "No benchmark results" in render(doc, generated=0)


def test_resume_keeps_hosts_that_passed_with_the_same_settings_and_redoes_the_rest(
    tmp_path: Path,
) -> None:
    from gotune.commands.rollout import _reset_for_resume

    inv = _inventory(tmp_path)
    state = st.start(tmp_path / "s.json", st.Identity.of(str(inv), ["a", "b", "c", "d"]),
                     {"a": 1, "b": 2, "c": 2, "d": 3}, dict.fromkeys("abcd", "old"))
    state.hosts["a"].update(outcome=st.PASSED)
    state.hosts["b"].update(outcome=st.PASSED)  # passed, but its settings changed since
    state.hosts["c"].update(outcome=st.FAILED, gate=["check x: broken"])
    state.hosts["d"].update(outcome=st.APPLYING)  # the control process died mid-wave
    _reset_for_resume(state, {"a": 1, "b": 2, "c": 2, "d": 2},
                      {"a": "old", "b": "new", "c": "old", "d": "old"}, {"waves": "1,100%"})
    assert {n: h["outcome"] for n, h in state.hosts.items()} == {
        "a": st.PASSED, "b": st.PENDING, "c": st.PENDING, "d": st.PENDING}
    assert state.hosts["b"]["digest"] == "new" and state.hosts["d"]["wave"] == 2
    assert state.hosts["c"]["previous"]["gate"] == ["check x: broken"]
    assert state.doc["waves"] == "1,100%"


# --- a connection lost mid-run ----------------------------------------------------------------


def test_a_connection_lost_as_a_command_starts_fails_that_host_as_pyinfra_expects() -> None:
    """paramiko raises EOFError when the transport is gone as it opens a channel; pyinfra
    fails a host on SSHException but lets EOFError stop every host's run."""
    from paramiko import SSHException

    from gotune.inventory import _lost_connection_is_ssh_error

    class Connector:
        def run_shell_command(self, command: str) -> tuple[bool, str]:
            if command == "lost":
                raise EOFError
            return True, command

    class Host:
        name = "sbx2"
        connector = Connector()

    host = Host()
    _lost_connection_is_ssh_error(host)
    assert host.connector.run_shell_command("true") == (True, "true")
    with pytest.raises(SSHException, match="sbx2: the SSH connection was lost"):
        host.connector.run_shell_command("lost")


def test_rollout_takes_the_inventory_commands_user_and_verifys_workload_flags() -> None:
    from gotune.cli import build_parser
    from gotune.commands.verify import workloads

    args = build_parser().parse_args([
        "rollout", "fleet.ini", "--user", "alice", "--bench", "none", "--project", "/src/svc",
        "--cold", "--workload-packages", "20"])  # fmt: skip
    assert args.user == "alice"
    wanted = workloads(args)
    assert (wanted.projects, wanted.cold, wanted.workload_packages) == (("/src/svc",), True, 20)
