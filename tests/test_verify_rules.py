"""verify's pure parts: statistics and verdicts, state checks, diagnosis, the report page.

The observations fed in have the shape the verify runner (``gotune.agent.verify``)
prints on a host (the sandbox tests in test_verify_sandbox.py produce the real thing
end to end).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from gotune.agent.stats import (
    FASTER,
    MIN_RUNS_FOR_VERDICT,
    SAME,
    SLOWER,
    benchmark_ok,
    benchmark_result,
    summarize,
    verdict,
)
from gotune.agent.verify.bench import Bench, order
from gotune.plan.model import Plan
from gotune.verify import html as report_html
from gotune.verify import table
from gotune.verify.checks import user_checks
from gotune.verify.checks.caches import expected_from_plan
from gotune.verify.checks.wear import check_wear as wear_check
from gotune.verify.diagnose import diagnose
from gotune.verify.result import history_record, host_result

N = MIN_RUNS_FOR_VERDICT


def bench(tuned: list[float], default: list[float], target: float | None = None,
          error: str | None = None) -> dict[str, Any]:
    return {"name": "repeat build", "target_s": target,
            "samples": {"tuned": tuned, "default": default}, "error": error}


# --- statistics and verdicts -----------------------------------------------------------------


def test_summary_is_median_min_max_and_count() -> None:
    s = summarize([0.3, 0.1, 0.2, 0.9])
    assert s is not None
    assert (s.median_s, s.min_s, s.max_s, s.runs) == (0.25, 0.1, 0.9, 4)
    assert summarize([]) is None


def test_separated_ranges_with_enough_runs_are_a_win() -> None:
    r = benchmark_result(bench([0.10, 0.11, 0.10, 0.12, 0.11], [0.20, 0.21, 0.22, 0.20, 0.25]))
    assert r["verdict"] == FASTER
    assert r["ratio"] == pytest.approx(0.21 / 0.11, rel=1e-3)
    assert r["tuned"]["runs"] == 5 and r["tuned"]["samples_s"][0] == 0.10


def test_overlapping_ranges_are_no_measurable_difference_even_with_a_big_ratio() -> None:
    # medians 0.10 vs 0.20, but one default run as fast as the tuned ones
    r = benchmark_result(bench([0.10] * N, [0.09, 0.2, 0.2, 0.2, 0.2]))
    assert r["ratio"] == pytest.approx(2.0)
    assert r["verdict"] == SAME
    assert benchmark_ok(r)


def test_a_difference_below_the_noise_floor_is_not_a_win() -> None:
    r = benchmark_result(bench([1.00, 1.00, 1.01, 1.00, 1.00], [1.02, 1.03, 1.03, 1.02, 1.03]))
    assert r["verdict"] == SAME  # ranges apart, but 2 % is inside the noise


def test_too_few_runs_never_give_a_verdict() -> None:
    assert verdict(summarize([0.1, 0.1]), summarize([0.5, 0.5])) == SAME


def test_measurably_slower_tuning_fails_the_benchmark() -> None:
    r = benchmark_result(bench([0.5] * N, [0.1] * N))
    assert r["verdict"] == SLOWER
    assert not benchmark_ok(r)


def test_missed_target_fails_even_when_faster_than_default() -> None:
    r = benchmark_result(bench([0.5] * N, [0.9] * N, target=0.3))
    assert r["verdict"] == FASTER
    assert r["target_met"] is False
    assert not benchmark_ok(r)


def test_a_benchmark_that_could_not_run_is_an_error_never_a_missed_target() -> None:
    r = benchmark_result(bench([], [], target=1.5, error="tuned: Permission denied"))
    assert r["verdict"] == "error" and r["tuned"] is None
    assert r["target_met"] is None and r["targets_met"] == {}  # go's message, no "MISSED"
    assert not benchmark_ok(r)
    assert "MISSED" not in table.render({"hosts": {"h": {"verdict": "fail", "checks": [],
                                                           "benchmarks": [r]}}})


def test_a_difference_counts_only_when_the_confirmation_batch_repeats_it() -> None:
    fast, slow, mixed = [0.10] * N, [0.20] * N, [0.10, 0.21, 0.19, 0.2, 0.2]
    assert benchmark_result(dict(bench(fast + fast, slow + slow), confirm_from=N))[
        "verdict"] == FASTER
    drifted = benchmark_result(dict(bench(fast + fast, slow + mixed), confirm_from=N))
    assert drifted["verdict"] == SAME and drifted["confirm_from"] == N
    assert drifted["tuned"]["runs"] == 2 * N  # the summary covers every run


def test_the_runner_confirms_only_a_first_batch_that_looks_different() -> None:
    b = Bench("go", "/nonexistent", [], "go1.27", confirm={"min_runs": N, "noise_fraction": 0.05})
    assert b._separated({"tuned": [0.1] * N, "default": [0.2] * N}, N)
    assert not b._separated({"tuned": [0.1] * N, "default": [0.2, 0.2, 0.2, 0.2, 0.1]}, N)
    assert not b._separated({"tuned": [1.00] * N, "default": [1.02] * N}, N)  # inside noise
    assert not b._separated({"tuned": [0.1] * 3, "default": [0.2] * 3}, 3)  # too few runs


def test_runs_alternate_which_variant_goes_first() -> None:
    seq = [v for i in range(4) for v in order(["A", "B"], i)]
    assert "".join(seq) == "ABBAABBA"


# --- state checks -----------------------------------------------------------------------------


def user_rec(**paths: dict[str, Any]) -> dict[str, Any]:
    env = {"GOCACHE": "/c", "GOMODCACHE": "/m", "GOTMPDIR": ""}
    return {
        "uid": 1000,
        "login": {"ok": True, "path": "/usr/local/go/bin/go", "env": dict(env)},
        "non_login": {"ok": True, "path": "/usr/local/go/bin/go", "env": dict(env)},
        "goenv_file": {"path": "/home/a/.config/go/env", "exists": True,
                       "values": {"GOCACHE": "/c", "GOMODCACHE": "/m"}},
        "paths": paths,
    }


def disk(path: str, **extra: Any) -> dict[str, Any]:
    obs = {"path": path, "exists": True, "uid": 1000, "owner": "alice", "mode": "0o755",
           "writable": True, "mount": "/", "fstype": "ext4", "source": "/dev/nvme0n1p2",
           "device": "nvme0n1p2", "rotational": False, "virtual": False,
           "size_bytes": 500 << 30, "free_bytes": 100 << 30, "super_options": "rw"}
    obs.update(extra)
    return obs


def names_failing(checks: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in checks if not c["ok"]]


def test_healthy_user_passes_every_check() -> None:
    checks = user_checks("alice", user_rec(GOCACHE=disk("/c"), GOMODCACHE=disk("/m")))
    assert names_failing(checks) == []
    assert any("as the GOENV file" in c["detail"] for c in checks)


def test_an_export_in_the_login_shell_that_overrides_goenv_is_caught() -> None:
    rec = user_rec(GOCACHE=disk("/c"))
    rec["login"]["env"]["GOCACHE"] = "/home/alice/.cache/go-build"
    checks = user_checks("alice", rec)
    assert names_failing(checks) == ["alice: go env (login shell)"]
    causes = diagnose({"users": {"alice": rec}}, checks, [], True)
    assert [d["cause"] for d in causes] == ["env_override"]


def stored(users: dict[str, dict[str, tuple[str | None, str]]]) -> Plan:
    """A stored plan: per user, (value, medium) of GOMODCACHE, GOCACHE and GOTMPDIR; a key not
    given is planned to stay what the user's go env shows in ``user_rec``."""
    env = user_rec()["login"]["env"]
    decisions: list[dict[str, Any]] = [
        {"key": "go", "value": None, "medium": "unchanged", "reason": "r"}
    ]
    for user, keys in users.items():
        for key in ("GOMODCACHE", "GOCACHE", "GOTMPDIR"):
            value, medium = keys.get(key, (env.get(key) or None, "nvme"))
            decisions.append({"key": key, "value": value, "medium": medium, "reason": "r",
                              "user": user})
    return Plan.from_dict({"decisions": decisions})


def test_settings_that_differ_from_the_plan_in_every_shell_are_named() -> None:
    rec = user_rec(GOCACHE=disk("/c"))
    plan = stored({"alice": {"GOCACHE": ("/fast/c", "nvme")}})
    checks = user_checks("alice", rec, plan)
    assert "GOCACHE is '/c', planned '/fast/c'" in checks[0]["detail"]
    causes = diagnose({"users": {"alice": rec}}, checks, [], True)
    assert [d["cause"] for d in causes] == ["not_as_planned"]


def test_plan_values_are_compared_and_unset_gotmpdir_means_empty() -> None:
    plan = stored({
        "alice": {"GOCACHE": ("/c", "tmpfs"), "GOTMPDIR": (None, "default"),
                  "GOMODCACHE": ("/m", "nvme")},
        "bob": {"GOCACHE": ("/other", "ssd")},
    })
    values, media = expected_from_plan(plan, "alice")
    assert values == {"GOCACHE": "/c", "GOTMPDIR": "", "GOMODCACHE": "/m"}
    assert media == {"GOCACHE": "tmpfs", "GOTMPDIR": "default", "GOMODCACHE": "nvme"}
    plan = stored({"alice": {"GOCACHE": ("/c", "tmpfs"), "GOTMPDIR": (None, "default")}})
    checks = user_checks("alice", user_rec(GOCACHE=disk("/c")), plan)
    # planned tmpfs, found ext4
    assert names_failing(checks) == ["alice: GOCACHE filesystem"]


def test_cache_owned_by_root_and_unwritable_is_permission_denied() -> None:
    rec = user_rec(GOCACHE=disk("/c", uid=0, owner="root", writable=False,
                                write_error="Permission denied", write_errno="EACCES"))
    checks = user_checks("alice", rec)
    assert names_failing(checks) == ["alice: GOCACHE owned by alice"]
    causes = diagnose({"users": {"alice": rec}}, checks, [], True)
    assert causes[0]["cause"] == "permission_denied"
    assert "owned by root" in causes[0]["detail"]


def test_full_uncapped_tmpfs_fails_both_tmpfs_checks_and_is_diagnosed() -> None:
    rec = user_rec(GOCACHE=disk("/t/c", mount="/t", fstype="tmpfs", source="tmpfs",
                                device=None, rotational=None, free_bytes=0,
                                size_bytes=1 << 20, super_options="rw,mode=700"))
    checks = user_checks("alice", rec)
    assert names_failing(checks) == ["alice: tmpfs /t capped", "alice: tmpfs /t has room"]
    causes = [d["cause"] for d in diagnose({"users": {"alice": rec}}, checks, [], True)]
    assert causes == ["tmpfs_full"]


def test_capped_tmpfs_with_room_passes() -> None:
    rec = user_rec(GOCACHE=disk("/t/c", mount="/t", fstype="tmpfs", free_bytes=3 << 30,
                                size_bytes=4 << 30, super_options="rw,size=4194304k,mode=700"))
    checks = user_checks("alice", rec)
    assert names_failing(checks) == []
    assert "size=4.0 GiB" in " ".join(c["detail"] for c in checks)


@pytest.mark.parametrize(
    ("obs", "cause"),
    [
        ({"fstype": "9p", "mount": "/mnt/c", "source": "C:\\"}, "9p_storage"),
        ({"fstype": "nfs4", "source": "srv:/home"}, "network_storage"),
        ({"fstype": "fuse.sshfs", "source": "me@box:"}, "network_storage"),
        ({"rotational": True, "device": "sda1"}, "rotational_storage"),
    ],
)
def test_slow_storage_under_a_missed_target_is_named(obs: dict[str, Any], cause: str) -> None:
    rec = user_rec(GOCACHE=disk("/c", **obs))
    missed = benchmark_result(bench([2.0] * N, [2.0] * N, target=1.5))
    causes = [d["cause"] for d in diagnose({"users": {"alice": rec}}, [], [missed], True)]
    assert causes == [cause]


def test_a_virtual_disk_claiming_rotational_is_not_blamed() -> None:
    rec = user_rec(GOCACHE=disk("/c", rotational=True, virtual=True, device="vda"))
    causes = [d["cause"] for d in diagnose({"users": {"alice": rec}}, [], [], True)]
    assert causes == ["unknown"]


def test_cpu_frequency_cap_is_named() -> None:
    cpus = [{"cpu": i, "scaling_max_freq": 1_200_000, "cpuinfo_max_freq": 3_400_000}
            for i in range(4)]
    causes = diagnose({"users": {}, "cpufreq": cpus}, [], [], True)
    assert causes[0]["cause"] == "cpu_frequency_capped"
    assert "4 of 4 CPUs" in causes[0]["detail"] and "1.20 GHz" in causes[0]["detail"]


def test_uncapped_cpus_and_a_healthy_host_get_no_diagnosis() -> None:
    cpus = [{"cpu": 0, "scaling_max_freq": 3_400_000, "cpuinfo_max_freq": 3_400_000}]
    assert diagnose({"users": {}, "cpufreq": cpus}, [], [], False) == []
    assert diagnose({"users": {}, "cpufreq": cpus}, [], [], True)[0]["cause"] == "unknown"


def test_stale_wear_reading_fails_and_fresh_one_passes() -> None:
    now = 1_800_000_000.0
    assert wear_check({"path": "/w", "status": "ok", "updated": now - 3600}, now)["ok"]
    assert not wear_check({"path": "/w", "status": "ok", "updated": now - 5 * 86400}, now)["ok"]
    assert not wear_check({"path": "/w", "error": "No such file or directory"}, now)["ok"]


# --- host result, table and report --------------------------------------------------------------


def raw_host(name: str = "alice", **paths: dict[str, Any]) -> dict[str, Any]:
    rec = user_rec(**paths)
    rec["benchmarks"] = [
        {"name": "first build (new module)", "target_s": 1.5, "error": None,
         "samples": {"tuned": [0.31, 0.30, 0.33, 0.29, 0.30],
                     "default": [0.61, 0.58, 0.66, 0.60, 0.59]}},
        {"name": "repeat build", "target_s": 0.3, "error": None,
         "samples": {"tuned": [0.08, 0.09, 0.08, 0.10, 0.08],
                     "default": [0.09, 0.08, 0.09, 0.08, 0.09]}},
    ]
    return {"users": {name: rec}, "cpufreq": [], "history": [], "started": 1.0, "finished": 31.0}


def test_host_passes_when_checks_pass_and_targets_are_met() -> None:
    result = host_result(raw_host(GOCACHE=disk("/c")))
    assert result["verdict"] == "pass"
    assert [b["verdict"] for b in result["benchmarks"]] == [FASTER, SAME]
    assert result["diagnosis"] == []
    line = history_record(result)
    assert line["benchmarks"][0]["tuned_s"] == 0.30
    json.dumps(line)


def test_runner_error_fails_the_host_with_its_message() -> None:
    result = host_result({"error": "no such user 'zed' on this host"})
    assert result["verdict"] == "fail"
    assert result["checks"][0]["detail"] == "no such user 'zed' on this host"


def test_table_shows_ratio_verdict_and_failures() -> None:
    raw = raw_host(GOCACHE=disk("/c", writable=False, write_error="Permission denied",
                                write_errno="EACCES"))
    text = table.render({"hosts": {"dev-01": host_result(raw)}})
    assert text.startswith("dev-01: FAIL")
    assert "2.00x  faster" in text
    assert "FAIL alice: GOCACHE owned by alice" in text
    assert "cause: permission_denied" in text


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for key, value in attrs:
            if key in ("src", "href") and value:
                self.links.append(value)
        if tag == "script":
            self.scripts.append(dict(attrs))


def test_report_is_one_self_contained_page_with_charts_and_escaped_text(tmp_path: Path) -> None:
    hostile = '<script>alert("x")</script>'
    fleet = {"hosts": {"dev-01": host_result(raw_host(GOCACHE=disk("/c"))),
                       hostile: host_result(raw_host(GOCACHE=disk(
                           "/c", writable=False, write_errno="EACCES",
                           write_error="Permission denied")))}}
    earlier = history_record(fleet["hosts"]["dev-01"])
    fleet["hosts"]["dev-01"]["history"] = [dict(earlier, time=1.0), dict(earlier, time=2.0)]
    path = report_html.write_report(fleet, tmp_path)
    text = path.read_text()
    parser = _Collector()
    parser.feed(text)
    parser.close()
    assert all(not re.match(r"(?i)(https?:)?//", link) for link in parser.links)
    assert all(s.get("type") == "application/json" and "src" not in s for s in parser.scripts)
    assert "<link" not in text and "@import" not in text and "url(" not in text
    assert hostile not in text  # only escaped
    # the fleet chart, an A/B chart per benchmark and host, one trend chart per benchmark
    assert parser.tags.count("svg") == 1 + 2 * 2 + 2
    data = re.search(r'<script type="application/json" id="gotune-verify-data">(.*?)</script>',
                     text, re.S)
    assert data is not None and hostile in json.loads(data.group(1))["hosts"]


# --- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--runs", "0"], "gotune: --runs must be between 1 and 50"),
        (["--bench", "warm rebuild cmd/go,nope"], "gotune: --bench: unknown benchmark 'nope'"),
    ],
)
def test_bad_verify_flags_are_one_line_and_exit_2(flags: list[str], message: str) -> None:
    out = subprocess.run([sys.executable, "-m", "gotune", "verify", "@local", *flags],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.startswith(message) and out.stderr.count("\n") == 1


def test_numa_wrappers_are_checked_and_their_figures_reported() -> None:
    raw = raw_host(GOCACHE=disk("/c"))
    raw["users"]["alice"]["wrappers"] = [
        {"tool": "go", "path": "/usr/local/lib/gotune/bin/go", "ok": True,
         "output": "go version go1.27.3 linux/amd64"},
        {"tool": "gopls", "path": "/usr/local/lib/gotune/bin/gopls", "ok": False,
         "output": "numactl: cannot bind"},
    ]
    raw["numa_wrappers"] = {"go": {"numactl_args": ["--interleave=0,1"], "keep": False,
                                   "verdict": "no measurable difference",
                                   "plain_s": [1.0, 1.2, 1.1], "wrapped_s": [1.1, 1.0, 1.3]}}
    result = host_result(raw)
    assert names_failing(result["checks"]) == ["alice: wrapper gopls runs"]
    page = report_html.render({"hosts": {"numa-box": result}})
    assert "--interleave=0,1" in page and "1.10 s (n=3)" in page and "no (removed)" in page
