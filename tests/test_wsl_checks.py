"""verify's wsl checks, from the runner's observations and the plan apply stored."""

from __future__ import annotations

from typing import Any

from gotune.plan.model import Plan
from gotune.verify.checks import host_checks
from tests.test_wsl_plan import plan_for, wsl_facts

CONF = '[boot]\nsystemd=true\n[automount]\noptions="metadata"\n[interop]\nappendWindowsPath=false\n'
WSLCONFIG = "\ufeff[wsl2]\r\nmemory=24GB\r\n[experimental]\r\nautoMemoryReclaim=gradual\r\n"


def observed(conf: str = CONF, wslconfig: str = WSLCONFIG, **more: Any) -> dict[str, Any]:
    wsl = {"conf": {"path": "/etc/wsl.conf", "exists": True, "text": conf},
           "wslconfig": {"path": "/mnt/c/Users/Dev User/.wslconfig", "exists": True,
                         "text": wslconfig},
           "max_user_watches": 524288, "restart_pending": True, "systemd": False, **more}
    env = {"GOPATH": "/home/dev/go", "GOCACHE": "/home/dev/.cache/go-build"}
    return {"users": {"dev": {"login": {"ok": True, "env": env},
                              "non_login": {"ok": True, "env": env}}}, "wsl": wsl}


def wsl_checks(raw: dict[str, Any], plan: Plan | None) -> dict[str, tuple[bool, str]]:
    names = ("wsl.conf", ".wslconfig", "fs.inotify", "WSL restart", "systemd", "dev: Go paths")
    return {c["name"]: (c["ok"], c["detail"]) for c in host_checks(raw, plan)
            if c["name"].startswith(names)}  # fmt: skip


def test_after_apply_both_files_hold_the_plan_and_the_restart_is_reported_pending() -> None:
    found = wsl_checks(observed(), plan_for(wsl_facts()))
    assert all(ok for ok, _ in found.values()), found
    assert found["WSL restart"][1].startswith("pending")
    assert found["systemd runs"] == (True, "waits for `wsl --shutdown`")


def test_a_key_edited_away_or_a_broken_line_fails_naming_it() -> None:
    plan = plan_for(wsl_facts())
    found = wsl_checks(observed(wslconfig="[wsl2]\nmemory=8GB\n[experimental]\n"
                                          "autoMemoryReclaim=gradual\n"), plan)
    assert found[".wslconfig holds the planned keys"] == (
        False, "/mnt/c/Users/Dev User/.wslconfig: wsl2.memory is '8GB', planned '24GB'")
    found = wsl_checks(observed(conf=CONF + "oops\n"), plan)
    assert not found["wsl.conf holds the planned keys"][0]
    assert "line 7" in found["wsl.conf holds the planned keys"][1]


def test_once_wsl_restarted_systemd_must_run_and_go_must_stay_off_mnt() -> None:
    raw = observed(restart_pending=False, max_user_watches=8192)
    raw["users"]["dev"]["non_login"]["env"] = {"GOPATH": "/mnt/c/Users/Dev User/go"}
    found = wsl_checks(raw, plan_for(wsl_facts()))
    assert found["systemd runs"][0] is False
    assert found["fs.inotify.max_user_watches"][0] is False
    assert found["dev: Go paths off Windows' drives"] == (
        False, "GOPATH=/mnt/c/Users/Dev User/go (non-login shell): 9p makes every file "
        "operation a round trip to Windows")
    assert found["WSL restart"] == (True, "none pending")


def test_without_a_stored_plan_the_files_must_still_parse() -> None:
    found = wsl_checks(observed(conf="[boot\n"), None)
    assert found["wsl.conf holds the planned keys"][0] is False
    assert ".wslconfig holds the planned keys" not in found
