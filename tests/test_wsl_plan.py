"""The wsl component's rules, from facts alone: what a WSL2 distro gets, and why.

A distro on a 32 GiB, 16-thread Windows laptop (the sandbox's Windows host too),
then the files people really have: a .wslconfig from Notepad, one with a broken line,
a wsl.conf that belongs to the user, interop switched off, a GOPATH on C:.
"""

from __future__ import annotations

import pytest

from gotune.facts.model import Facts, GoenvFile, Wsl, WslConfigFile, WslDriveCost, WslProject
from gotune.plan import make_plan
from gotune.plan.model import Plan, WslConfig
from gotune.plan.wsl import INOTIFY_WATCHES, memory_for
from gotune.settings import validate_host_data
from tests.test_plan import machine, mount

GIB = 1024**3
PROFILE = "/mnt/c/Users/Dev User"
# Seconds per missed lookup: 11 Windows folders over 9p against Linux's own.
SLOW_WITH = [0.0051, 0.0049, 0.0050, 0.0052, 0.0048, 0.0050, 0.0051, 0.0049, 0.0050, 0.0052]
FAST_WITHOUT = [0.0004, 0.0005, 0.0004, 0.0004, 0.0005, 0.0004, 0.0005, 0.0004, 0.0004, 0.0005]


def wsl_facts(
    conf: str | None = None, wslconfig: str | None = None, interop: bool = True,
    conf_owner: int = 0, with_s: list[float] | None = None,
    without_s: list[float] | None = None, systemd: bool = False, **wsl: object,
) -> Facts:
    f = machine([mount("/", "/dev/sdc", "ext4", "virtual"),
                 mount("/mnt/c", "C:\\", "9p", "network", free_gib=None, network=True)],
                virt="wsl2")  # fmt: skip
    f.platform.systemd = systemd
    w = Wsl(conf=WslConfigFile("/etc/wsl.conf", exists=conf is not None,
                               owner_uid=conf_owner if conf is not None else None,
                               encoding="utf-8", text=conf))  # fmt: skip
    if interop:
        w.windows_profile, w.profile_source, w.windows_profile_exists = PROFILE, "interop", True
        w.wslconfig = WslConfigFile(f"{PROFILE}/.wslconfig", exists=wslconfig is not None,
                                    encoding="utf-8", text=wslconfig)  # fmt: skip
        w.windows_memory_bytes, w.windows_cpus = 32 * GIB - 2**28, 16
        w.windows_path_entries = ["/mnt/c/Windows/System32", "/mnt/c/Program Files/Git/cmd"]
        w.lookup_with_s = SLOW_WITH if with_s is None else with_s
        w.lookup_without_s = FAST_WITHOUT if without_s is None else without_s
    else:
        w.windows_error = "cmd.exe not found (interop off or no Windows drive mounted)"
    w.max_user_watches = 8192
    for key, value in wsl.items():
        setattr(w, key, value)
    f.wsl = w
    return f


def plan_for(facts: Facts, **data: object) -> Plan:
    return make_plan(facts, validate_host_data({"gotune_users": ["dev"], **data}, "box"))


def conf_of(plan: Plan) -> WslConfig:
    assert plan.wsl is not None
    return plan.wsl.conf


def wslconfig_of(plan: Plan) -> WslConfig:
    assert plan.wsl is not None and plan.wsl.wslconfig is not None
    return plan.wsl.wslconfig


@pytest.mark.parametrize(("ram_gib", "memory"), [(8, 4), (16, 12), (32, 24), (64, 48), (128, 96)])
def test_wsl_gets_three_quarters_of_windows_ram_and_windows_keeps_at_least_4_gib(
    ram_gib: int, memory: int
) -> None:
    assert memory_for(ram_gib * GIB) == memory


def test_a_fresh_distro_gets_systemd_metadata_and_a_sized_wslconfig_after_wsl_shutdown() -> None:
    plan = plan_for(wsl_facts())
    conf = conf_of(plan)
    assert conf.change and conf.restart == "wsl --shutdown"
    assert conf.keys == {"boot.systemd": "true", "automount.options": "metadata",
                         "interop.appendWindowsPath": "false"}  # fmt: skip
    assert "takes effect after `wsl --shutdown`" in conf.reason
    assert conf.measured is not None and conf.measured["verdict"] == "faster"
    wc = wslconfig_of(plan)
    assert wc.keys == {"wsl2.memory": "24GB", "experimental.autoMemoryReclaim": "gradual"}
    assert wc.change and wc.default_newline == "\r\n" and wc.value == f"{PROFILE}/.wslconfig"
    assert plan.wsl is not None and plan.wsl.inotify.value == str(INOTIFY_WATCHES)
    assert any(w.startswith("`wsl --shutdown` from Windows") for w in plan.warnings)
    assert "golang/go#43427" in plan.wsl.defender.reason
    assert Plan.from_dict(plan.to_dict()).to_dict() == plan.to_dict()


def test_after_apply_the_same_files_plan_no_change() -> None:
    conf = '[boot]\nsystemd=true\n\n[automount]\noptions="metadata"\n\n[interop]\n' \
           "appendWindowsPath=false\n"
    wslconfig = "[wsl2]\r\nmemory=24GB\r\n\r\n[experimental]\r\nautoMemoryReclaim=gradual\r\n"
    f = wsl_facts(conf=conf, wslconfig=wslconfig, max_user_watches=INOTIFY_WATCHES,
                  recorded={"with_ms": 5.0, "without_ms": 0.4})
    plan = plan_for(f)
    assert plan.wsl is not None
    assert [d.key for d in plan.wsl.decisions() if d.change] == []
    assert "gotune measured 5.0 ms per lookup" in conf_of(plan).reason
    assert not any("wsl --shutdown" in w for w in plan.warnings)


def test_a_larger_memory_and_ones_for_true_are_the_users_and_stay() -> None:
    f = wsl_facts(conf="[boot]\nsystemd=1\n[interop]\nappendWindowsPath=0\n",
                  wslconfig="[wsl2]\nmemory=30GB\nprocessors=4\n")
    plan = plan_for(f)
    assert conf_of(plan).keys["boot.systemd"] == "1"
    assert conf_of(plan).keys["interop.appendWindowsPath"] == "0"
    wc = wslconfig_of(plan)
    assert wc.keys == {"wsl2.processors": "16", "experimental.autoMemoryReclaim": "gradual"}
    assert "your 30GB is at least the 24GB gotune would give: kept" in wc.reason


def test_the_windows_path_stays_when_the_lookups_show_no_difference() -> None:
    conf = conf_of(plan_for(wsl_facts(without_s=SLOW_WITH)))
    assert "interop.appendWindowsPath" not in conf.keys
    assert "appendWindowsPath stays" in conf.reason and "no measurable difference" in conf.reason


def test_a_users_own_append_windows_path_true_is_kept_with_the_figures() -> None:
    conf = conf_of(plan_for(wsl_facts(conf="[interop]\nappendWindowsPath = true\n")))
    assert "interop.appendWindowsPath" not in conf.keys
    assert "is your choice, kept" in conf.reason and "ms with the 2 Windows PATH" in conf.reason


def test_a_wsl_conf_owned_by_the_user_is_left_alone_and_the_plan_says_why() -> None:
    plan = plan_for(wsl_facts(conf="[boot]\nsystemd=false\n", conf_owner=1000))
    conf = conf_of(plan)
    assert not conf.change and conf.refused and "uid 1000, not root" in conf.refused
    assert any("uid 1000" in w for w in plan.warnings)


def test_a_wsl_conf_with_crlf_and_a_bom_is_rewritten_plain() -> None:
    conf = conf_of(plan_for(wsl_facts(conf="\ufeff[boot]\r\nsystemd=true\r\n[automount]\r\n"
                                           'options="metadata"\r\n', without_s=SLOW_WITH)))
    assert conf.change and conf.newline == "\n" and not conf.keep_bom
    assert "microsoft/WSL#8002" in conf.reason and "byte order mark" in conf.reason


@pytest.mark.parametrize(
    ("wslconfig", "line"),
    [("[wsl2]\r\nmemory 8GB\r\n", 2), ("[wsl2\nmemory=8GB\n", 1),
     ("[wsl2]\nkernel=C:\\Users\\me\\k\n", 2)],
)
def test_a_wslconfig_wsl_cannot_read_is_named_line_and_all_and_not_touched(
    wslconfig: str, line: int
) -> None:
    plan = plan_for(wsl_facts(wslconfig=wslconfig))
    wc = wslconfig_of(plan)
    assert not wc.change and wc.refused is not None
    assert f"{PROFILE}/.wslconfig line {line} (" in wc.refused
    assert sum(f".wslconfig line {line}" in w for w in plan.warnings) == 1


def test_notepads_wslconfig_with_duplicates_and_sparse_vhd_is_merged_and_warned_about() -> None:
    text = ("\ufeff[wsl2]\r\nmemory=8GB\r\nfutureKey=1\r\n[experimental]\r\nsparseVhd=true\r\n"
            "[wsl2]\r\nmemory=2GB\r\n")  # fmt: skip
    plan = plan_for(wsl_facts(wslconfig=text))
    wc = wslconfig_of(plan)
    assert wc.change and wc.was["wsl2.memory"] == "8GB"
    assert "wsl2.memory is set on lines 2, 7: WSL reads the first" in wc.reason
    assert any("sparseVhd=true" in w and "microsoft/WSL#13075" in w for w in plan.warnings)


def test_interop_off_wslconfig_waits_for_a_profile_setting_and_wsl_conf_still_applies() -> None:
    plan = plan_for(wsl_facts(interop=False))
    wc = wslconfig_of(plan)
    assert not wc.change and "set gotune_wsl_windows_profile" in str(wc.refused)
    assert "interop off" in wc.reason
    conf = conf_of(plan)
    assert conf.change and "interop.appendWindowsPath" not in conf.keys
    assert "not measured" in conf.reason


def test_a_gopath_on_c_moves_home_through_goenv() -> None:
    f = wsl_facts()
    uf = f.users["dev"]
    uf.go = {"GOPATH": f"{PROFILE}/go", "GOCACHE": "/home/dev/.cache/go-build",
             "GOMODCACHE": "/home/dev/.cache/mod"}  # fmt: skip
    uf.goenv = GoenvFile("/home/dev/.config/go/env", True, {"GOPATH": f"{PROFILE}/go"})
    plan = plan_for(f, gotune_gocache_tmpfs="never")
    assert plan.wsl is not None and plan.wsl.gopath["dev"].value == "/home/dev/go"
    assert plan.goenv["dev"].values["GOPATH"] == "/home/dev/go"


def test_a_gotmpdir_on_c_goes_back_to_the_system_temp_dir() -> None:
    f = wsl_facts()
    f.users["dev"].goenv = GoenvFile("/home/dev/.config/go/env", True,
                                     {"GOTMPDIR": "/mnt/c/Temp/go"})  # fmt: skip
    plan = plan_for(f, gotune_gocache_tmpfs="never")
    gotmp = plan.caches["dev"].gotmpdir
    assert gotmp.change and gotmp.value is None and "network filesystem" in gotmp.reason


def test_a_go_module_on_c_gets_a_warning_with_the_measured_cost() -> None:
    f = wsl_facts(projects=[WslProject("dev", f"{PROFILE}/src/app", "shell history")],
                  drive_costs=[WslDriveCost("/mnt/c", 0.8, 0.004, 200)])
    plan = plan_for(f, gotune_wsl_project_dirs=["/mnt/c/work/api", "/home/dev/src/ok"])
    found = [w for w in plan.warnings if "Go module" in w]
    assert len(found) == 2
    assert found[0].startswith(f"dev: Go module {PROFILE}/src/app (shell history) is on /mnt/c")
    assert "0.800 ms against 0.0040 ms on / (200x" in found[0]
    assert "/mnt/c/work/api (gotune_wsl_project_dirs)" in found[1]


def test_gotune_wsl_enabled_false_leaves_wsls_files_alone() -> None:
    plan = plan_for(wsl_facts(), gotune_wsl_enabled=False)
    assert plan.wsl is not None and not any(d.change for d in plan.wsl.decisions())


def test_no_wsl_section_on_other_machines() -> None:
    assert plan_for(machine([mount("/", "/dev/nvme0n1p2", "ext4", "nvme")])).wsl is None
