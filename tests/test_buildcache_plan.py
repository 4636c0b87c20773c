"""The build cache's plan rules, from facts alone: where the site runs, who gets GOCACHEPROG."""

from __future__ import annotations

import json

import pytest

from gotune.agent.buildcache.measure import judge
from gotune.agent.paths import BUILDCACHE_HELPER, BUILDCACHE_TOKENS
from gotune.errors import GotuneError
from gotune.facts.model import Facts, InstalledBuildcache
from gotune.plan.buildcache import go_minor
from gotune.plan.model import BuildcacheHelper, BuildcacheSite, Plan
from gotune.settings import validate_host_data
from tests.test_plan import machine, mount, plan_for

GO_124 = {"GOVERSION": "go1.24.3", "GOROOT": "/usr/local/go", "GOPATH": "/home/dev/go"}
SITE = "http://10.0.0.5:3001"


def laptop(go: dict[str, str] | None = None, goenv: dict[str, str] | None = None) -> Facts:
    return machine([mount("/", "/dev/nvme0n1p2", "ext4", "nvme")], go=go or GO_124,
                   goenv=goenv or {})


def helper_of(plan: Plan) -> BuildcacheHelper:
    assert plan.buildcache is not None and plan.buildcache.helper is not None, plan.to_dict()
    return plan.buildcache.helper


def site_of(plan: Plan) -> BuildcacheSite:
    assert plan.buildcache is not None and plan.buildcache.site is not None, plan.to_dict()
    return plan.buildcache.site


def test_no_site_and_no_url_plans_nothing() -> None:
    plan = plan_for(laptop(), gotune_users=["dev"])
    assert plan.buildcache is None
    assert "GOCACHEPROG" not in (plan.goenv["dev"].values if "dev" in plan.goenv else {})


def test_a_laptop_with_a_site_url_reads_through_the_helper() -> None:
    plan = plan_for(laptop(), gotune_users=["dev"], gotune_buildcache_url=SITE)
    h = helper_of(plan)
    assert h.value == f"{BUILDCACHE_HELPER} -site {SITE}" and not h.builder and h.change
    assert plan.goenv["dev"].values["GOCACHEPROG"] == h.value  # no token: it only reads
    assert "measures it" in h.reason and plan.buildcache and plan.buildcache.site is None


def test_a_builder_writes_with_its_own_token_file() -> None:
    plan = plan_for(laptop(), gotune_users=["dev"], gotune_buildcache_url=SITE,
                    gotune_buildcache_builder=True)
    assert plan.goenv["dev"].values["GOCACHEPROG"] == (
        f"{BUILDCACHE_HELPER} -site {SITE} -token-file {BUILDCACHE_TOKENS}/dev")


@pytest.mark.parametrize("version", ["go1.23.4", "go1.19.8", None])
def test_go_without_gocacheprog_gets_no_helper(version: str | None) -> None:
    go = dict(GO_124, GOVERSION=version) if version else {"GOROOT": "/usr/lib/go"}
    plan = plan_for(laptop(go=go), gotune_users=["dev"], gotune_buildcache_url=SITE)
    h = helper_of(plan)
    assert h.value is None and "1.24" in h.reason
    assert "dev" not in plan.goenv or "GOCACHEPROG" not in plan.goenv["dev"].values


def test_the_toolchain_being_installed_decides_the_go_version() -> None:
    plan = plan_for(laptop(go={"GOVERSION": "go1.19.8", "GOROOT": "/usr/lib/go-1.19"}),
                    gotune_users=["dev"], gotune_buildcache_url=SITE,
                    gotune_go_version="1.24.1", gotune_go_source="distro")
    assert helper_of(plan).value is None  # a distro go: its version is known after apply
    assert go_minor("go1.24rc1") == (1, 24) and go_minor("devel go1.25-abc") == (1, 25)


def test_the_mirror_host_on_a_lan_serves_the_site_and_its_developers_use_it() -> None:
    plan = plan_for(laptop(), gotune_users=["dev"], gotune_mirror_enabled=True,
                    gotune_mirror_listen="10.0.0.5", gotune_mirror_allow=["10.0.0.0/24"])
    s = site_of(plan)
    assert (s.listen, s.port, s.allow) == ("10.0.0.5", 3001, ["10.0.0.0/24"])
    assert s.value == "/var/cache/gotune/buildcache" and s.max_bytes == 20 * 1024**3
    assert helper_of(plan).site == "http://10.0.0.5:3001"


def test_a_loopback_mirror_serves_no_site_unless_asked() -> None:
    plan = plan_for(laptop(), gotune_users=["dev"], gotune_mirror_enabled=True)
    assert plan.buildcache is None
    plan = plan_for(laptop(), gotune_users=["dev"], gotune_buildcache_server=True,
                    gotune_buildcache_max_gib=5)
    assert site_of(plan).max_bytes == 5 * 1024**3
    assert helper_of(plan).site == "http://127.0.0.1:3001"


def test_a_lan_site_needs_client_networks() -> None:
    with pytest.raises(GotuneError, match="gotune_buildcache_allow"):
        validate_host_data({"gotune_buildcache_server": True,
                            "gotune_buildcache_listen": "10.0.0.5"})


def test_an_installed_site_in_the_same_place_is_no_change() -> None:
    f = laptop()
    f.gotune.buildcache = InstalledBuildcache(cache_dir="/var/cache/gotune/buildcache",
                                              runner="systemd")
    assert not site_of(plan_for(f, gotune_users=["dev"], gotune_buildcache_server=True)).change


def measured(keep: bool, **extra: object) -> dict[str, object]:
    return {"site": SITE, "go_version": "go1.24.3", "keep": keep, "helper_sha256": "ab" * 32,
            "why": "the test says so", "cold": {"site_median_s": 1.5, "plain_median_s": 30.0,
                                                "ratio": 20.0, "site_hits": 170, "gets": 180,
                                                "runs": 3},
            "noop": {"helper_median_s": 0.31, "plain_median_s": 0.30, "ratio": 1.03,
                     "verdict": "no measurable difference"}, **extra}


def test_a_helper_measured_to_help_is_kept_with_its_figures() -> None:
    prog = f"{BUILDCACHE_HELPER} -site {SITE}"
    f = laptop(goenv={"GOCACHEPROG": prog})
    f.gotune.buildcache_measured = measured(True)
    h = helper_of(plan_for(f, gotune_users=["dev"], gotune_buildcache_url=SITE))
    assert h.value == prog and not h.change
    assert "kept: cold first build 1.50 s with the site vs 30.00 s without (20.0x" in h.reason


def test_a_helper_measured_not_to_help_leaves_goenv() -> None:
    f = laptop(goenv={"GOCACHEPROG": f"{BUILDCACHE_HELPER} -site {SITE}", "GOPROXY": "x"})
    f.gotune.buildcache_measured = measured(False)
    plan = plan_for(f, gotune_users=["dev"], gotune_buildcache_url=SITE)
    assert helper_of(plan).value is None and "not kept" in helper_of(plan).reason
    assert plan.goenv["dev"].values["GOCACHEPROG"] is None  # gotune's own value goes


def test_figures_for_another_site_or_go_are_measured_again() -> None:
    f = laptop()
    f.gotune.buildcache_measured = measured(False, site="http://elsewhere:3001")
    assert helper_of(plan_for(f, gotune_users=["dev"], gotune_buildcache_url=SITE)).value


def test_someone_elses_gocacheprog_is_left_alone() -> None:
    f = laptop(goenv={"GOCACHEPROG": "/opt/other/cacheprog"})
    plan = plan_for(f, gotune_users=["dev"])
    assert "dev" not in plan.goenv or "GOCACHEPROG" not in plan.goenv["dev"].values


def test_the_plan_survives_its_json_and_never_holds_the_token() -> None:
    plan = plan_for(laptop(), gotune_users=["dev"], gotune_buildcache_server=True,
                    gotune_buildcache_builder=True, gotune_buildcache_token_file="/secret/t")
    text = json.dumps(plan.to_dict())
    assert Plan.from_dict(json.loads(text)).buildcache == plan.buildcache
    assert "/secret/t" not in text


def test_a_builders_record_keeps_its_helper_and_names_what_it_uploaded() -> None:
    prog = f"{BUILDCACHE_HELPER} -site {SITE} -token-file {BUILDCACHE_TOKENS}/dev"
    f = laptop(goenv={"GOCACHEPROG": prog})
    f.gotune.buildcache_measured = {
        "site": SITE, "go_version": "go1.24.3", "keep": True, "role": "builder",
        "warmed": {"workload": {"uploads": 380, "seconds": 31.0},
                   "cmd/go": {"uploads": 160, "seconds": 50.2}}}
    h = helper_of(plan_for(f, gotune_users=["dev"], gotune_buildcache_url=SITE,
                           gotune_buildcache_builder=True))
    assert h.value and not h.change
    assert "warmed the site: cmd/go 160 outputs uploaded in 50.2 s, workload 380" in h.reason
    # The same figures on a host that is no longer a builder are measured again.
    plan = plan_for(f, gotune_users=["dev"], gotune_buildcache_url=SITE)
    assert "apply measures it" in helper_of(plan).reason


def test_a_site_that_could_show_nothing_keeps_the_helper_and_measures_again() -> None:
    prog = f"{BUILDCACHE_HELPER} -site {SITE}"
    f = laptop(goenv={"GOCACHEPROG": prog})
    f.gotune.buildcache_measured = measured(False, site_cold=True, role="reader",
                                            why="the site failed while apply measured")
    h = helper_of(plan_for(f, gotune_users=["dev"], gotune_buildcache_url=SITE))
    assert h.value == prog and not h.change
    assert "apply measures it again: the site failed while apply measured" in h.reason


@pytest.mark.parametrize(("cold", "noop", "keep", "site_cold", "why"), [
    ({"site_hits": 0, "ratio": 1.0, "apart": False}, [], False, True, "held none"),
    ({"site_hits": 3, "ratio": 1.0, "apart": False, "site_down": ["dial tcp: refused"]}, [],
     False, True, "failed while apply measured (dial tcp: refused)"),
    ({"site_hits": 90, "ratio": 1.1, "apart": True}, [], False, False, "only 1.10x"),
    ({"site_hits": 90, "ratio": 9.0, "apart": False}, [], False, False, "ranges apart"),
    ({"site_hits": 90, "ratio": 9.0, "apart": True}, [{"verdict": "slower", "ratio": 1.2}],
     False, False, "no-op build slower (1.2x)"),
    ({"site_hits": 90, "ratio": 9.0, "apart": True},
     [{"verdict": "no measurable difference", "ratio": 1.01}], True, False, "9.0x faster"),
])  # fmt: skip
def test_the_measurement_keeps_a_helper_only_when_the_site_helps(
    cold: dict[str, object], noop: list[dict[str, object]], keep: bool, site_cold: bool,
    why: str,
) -> None:
    got = judge(cold, noop)
    assert got[:2] == (keep, site_cold) and why in got[2], got
