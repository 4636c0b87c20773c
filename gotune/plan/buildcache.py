"""The team build cache: which host serves it, and which developers' go asks it (GOCACHEPROG).

Pure rules over ``facts.model`` (no I/O):

- The site: a host with ``gotune_buildcache_server``, or by default the mirror's host when
  the mirror serves a LAN. Its cache goes where the mirror's would (beside the first
  developer's GOMODCACHE, or ``gotune_buildcache_cache_dir``), at most
  ``gotune_buildcache_max_gib``; it listens on ``gotune_buildcache_listen`` (default the
  mirror's address) for ``gotune_buildcache_allow`` (default the mirror's networks).
- The helper: every host with a site to ask (``gotune_buildcache_url``, else its own
  site) whose go has GOCACHEPROG (Go 1.24 and later). Its local tier is the GOCACHE the
  caches component placed (tmpfs or a fast disk). A host with
  ``gotune_buildcache_builder`` also writes, with the token gotune deploys to it; the
  others only read.
- Kept only where it helps: apply measures the helper on the host (a cold first build
  with the site vs without it, a warm no-op build with the helper vs without;
  ``gotune.agent.buildcache.measure``) and records the figures; the next plan keeps
  GOCACHEPROG when they say so, and names them, as the NUMA wrappers' are.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from gotune.agent.paths import (
    BUILDCACHE_CACHE_DIR,
    BUILDCACHE_HELPER,
    BUILDCACHE_RECORD,
    BUILDCACHE_TOKENS,
)
from gotune.facts.model import Facts, UserFacts
from gotune.plan.mirror import service_cache_dir
from gotune.plan.model import (
    BuildcacheHelper,
    BuildcachePlan,
    BuildcacheSite,
    Decision,
    TarballToolchain,
)
from gotune.plan.storage import place_of
from gotune.settings import Settings

# GOCACHEPROG is generally available from Go 1.24 (golang/go#59719); older go ignores it.
MIN_GO = (1, 24)
# The site's directory inside ``<mount>/gotune``.
SITE_DIR = "buildcache"

_GO_VERSION = re.compile(r"go(\d+)\.(\d+)")


def go_minor(version: str | None) -> tuple[int, int] | None:
    """``go1.24.3`` -> (1, 24); None when unknown."""
    m = _GO_VERSION.search(version or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def site_url(settings: Settings) -> str | None:
    """The site this host's developers ask: ``gotune_buildcache_url``, else its own."""
    if settings.buildcache_url:
        return settings.buildcache_url.rstrip("/")
    if not settings.buildcache_serves:
        return None
    listen = ipaddress.ip_address(settings.buildcache_address)
    if listen.is_unspecified:  # every address: this host reaches it on loopback
        local = "127.0.0.1" if listen.version == 4 else "[::1]"
    else:
        local = str(listen) if listen.version == 4 else f"[{listen}]"
    return f"http://{local}:{settings.buildcache_port}"


def _site(facts: Facts, settings: Settings, gomod: Decision | None) -> BuildcacheSite | None:
    if not settings.buildcache_serves:
        return None
    cache_dir, why, used, mount = service_cache_dir(
        facts, settings.users, gomod,
        ("gotune_buildcache_cache_dir", settings.buildcache_cache_dir), SITE_DIR,
        BUILDCACHE_CACHE_DIR,
    )  # fmt: skip
    installed = facts.gotune.buildcache.cache_dir if facts.gotune.buildcache else None
    clients = list(settings.buildcache_clients)
    listen, port = settings.buildcache_address, settings.buildcache_port
    used += [f"gotune_buildcache_server={settings.buildcache_server}",
             f"gotune_mirror_listen={settings.mirror_listen}"]  # fmt: skip
    return BuildcacheSite(
        key="buildcache.site", value=cache_dir, medium=place_of(facts, cache_dir).class_,
        reason=(
            f"serve the team build cache on {listen}:{port} from {cache_dir} ({why}); at most "
            f"{settings.buildcache_max_gib:g} GiB, least recently used evicted; builders "
            "(gotune_buildcache_builder) write with gotune's token, "
            + (f"clients in {', '.join(clients)} read" if clients else "this host reads")
        ),
        facts_used=used, change=installed != cache_dir, current=installed, mount=mount,
        listen=listen, port=port, max_bytes=Settings.gib(settings.buildcache_max_gib),
        allow=clients,
    )  # fmt: skip


def _go(facts: Facts, toolchain: Decision) -> tuple[str | None, str | None]:
    """(the developers' go version after apply, the go binary that builds the helper)."""
    if isinstance(toolchain, TarballToolchain):
        return f"go{toolchain.version}", f"{toolchain.goroot}/bin/go"
    first = next(iter(facts.users.values()), None)
    go = (first.go if first else facts.go) or {}
    root = go.get("GOROOT")
    return go.get("GOVERSION"), f"{root}/bin/go" if root else None


def measured_text(m: Mapping[str, Any]) -> str:
    """'cold first build 1.9 s with the site vs 31.2 s without (16.4x, ...); warm no-op ...'."""
    cold, noop = m.get("cold") or {}, m.get("noop") or {}
    parts = []
    if cold.get("site_median_s") is not None:
        parts.append(
            f"cold first build {cold['site_median_s']:.2f} s with the site vs "
            f"{cold.get('plain_median_s', 0):.2f} s without ({cold.get('ratio') or 0:.1f}x, "
            f"{cold.get('site_hits', '?')} of {cold.get('gets', '?')} outputs from the site, "
            f"{cold.get('runs', '?')} runs each)"
        )
    if noop.get("helper_median_s") is not None:
        parts.append(
            f"warm no-op build {noop['helper_median_s']:.3f} s with the helper vs "
            f"{noop.get('plain_median_s', 0):.3f} s without ({noop.get('ratio') or 0:.3f}x, "
            f"verdict '{noop.get('verdict', '?')}')"
        )
    go_cold = m.get("cold_cmd_go") or {}
    if go_cold.get("site_median_s") is not None:
        parts.append(
            f"cmd/go cold {go_cold['site_median_s']:.2f} s with the site vs "
            f"{go_cold.get('plain_median_s', 0):.2f} s without ({go_cold.get('ratio') or 0:.1f}x)"
        )
    warmed = m.get("warmed") or {}
    if warmed:
        parts.append("warmed the site: " + ", ".join(
            f"{name} {w.get('uploads', 0)} outputs uploaded in {w.get('seconds', 0):.1f} s"
            for name, w in sorted(warmed.items())))
    return "; ".join(parts) or str(m.get("why") or "no figures")


def _helper(facts: Facts, settings: Settings, toolchain: Decision) -> BuildcacheHelper | None:
    url = site_url(settings)
    if url is None:
        return None
    version, go = _go(facts, toolchain)
    used = [f"site={url}", f"go={version or 'unknown'}",
            f"gotune_buildcache_builder={settings.buildcache_builder}"]  # fmt: skip
    common: dict[str, Any] = {
        "key": "buildcache.helper", "site": url, "helper": BUILDCACHE_HELPER,
        "builder": settings.buildcache_builder, "go": go, "go_version": version,
        "token_dir": BUILDCACHE_TOKENS if settings.buildcache_builder else None,
    }  # fmt: skip
    minor = go_minor(version)
    if minor is None or minor < MIN_GO or go is None:
        have = version or "no go (or one whose version is unknown)"
        return BuildcacheHelper(
            value=None, medium="none", facts_used=used, **common,
            reason=f"{have}: GOCACHEPROG needs Go {MIN_GO[0]}.{MIN_GO[1]} or later; no helper",
        )  # fmt: skip
    command = f"{BUILDCACHE_HELPER} -site {url}"
    role = ("uploads its new outputs with the builders' token (gotune_buildcache_builder)"
            if settings.buildcache_builder else "only reads (not a builder)")
    why = (f"go asks {url} on a local miss (GOCACHEPROG, built on the host by its own "
           f"{version}); the local tier is each user's GOCACHE; this host {role}; a site that "
           "fails or is slow costs a go command at most 0.1 s")
    if settings.buildcache_measure_runs == 0:
        return BuildcacheHelper(
            value=command, medium="GOCACHEPROG", facts_used=used, **common,
            change=not _in_goenv(facts, command),
            reason=f"{why}; kept without measuring it (gotune_buildcache_measure_runs is 0)",
        )  # fmt: skip
    m = facts.gotune.buildcache_measured or {}
    role = "builder" if settings.buildcache_builder else "reader"
    same = bool(m) and (m.get("site"), m.get("go_version"), m.get("role", "reader")) == (
        url, version, role)
    if same and m.get("site_cold"):  # nothing to show yet: kept, measured again
        used.append(f"measured:{BUILDCACHE_RECORD}")
        return BuildcacheHelper(
            value=command, medium="GOCACHEPROG", facts_used=used, **common,
            change=not _in_goenv(facts, command), measured=dict(m),
            reason=f"{why}; apply measures it again: {m.get('why') or 'the site was cold'}",
        )  # fmt: skip
    if same:
        used.append(f"measured:{BUILDCACHE_RECORD}")
        if m.get("keep"):
            return BuildcacheHelper(
                value=command, medium="GOCACHEPROG", reason=f"{why}; kept: {measured_text(m)}",
                facts_used=used, current=command, measured=dict(m), **common,
            )  # fmt: skip
        return BuildcacheHelper(
            value=None, medium="none", facts_used=used, measured=dict(m), **common,
            reason=f"tried the team build cache ({url}); not kept: {m.get('why') or ''} "
            f"({measured_text(m)})",
        )  # fmt: skip
    measures = (
        "apply warms the site with verify's generated workload" if settings.buildcache_builder
        else "apply measures it on verify's generated workload (a cold first build with the "
        "site vs without, a warm no-op build with the helper vs without) and keeps it only "
        "where it helps"
    )
    return BuildcacheHelper(
        value=command, medium="GOCACHEPROG", facts_used=used, change=True, **common,
        reason=f"{why}; {measures}",
    )  # fmt: skip


def _in_goenv(facts: Facts, command: str) -> bool:
    """Whether every developer's GOENV file already starts GOCACHEPROG with ``command``."""
    return bool(facts.users) and all(
        (uf.goenv.values.get("GOCACHEPROG", "") if uf.goenv else "").startswith(command)
        for uf in facts.users.values()
    )


def plan_buildcache(
    facts: Facts, settings: Settings, gomod: Decision | None, toolchain: Decision
) -> BuildcachePlan | None:
    """The build cache's decisions (None: no site here and no site to ask).

    + facts: the host's facts (mounts, the installed site and helper, the measured record)
    + settings: the host's validated settings
    + gomod: the first developer user's GOMODCACHE decision (the site's cache goes beside it)
    + toolchain: the toolchain decision (the go developers will run)
    """
    site = _site(facts, settings, gomod)
    helper = _helper(facts, settings, toolchain)
    if site is None and helper is None:
        return None
    return BuildcachePlan(site, helper)


def gocacheprog(uf: UserFacts, helper: BuildcacheHelper | None) -> tuple[bool, str | None]:
    """(whether gotune sets GOCACHEPROG in the user's GOENV file, the value; None removes it).

    Set when the plan keeps a helper; removed when the file names gotune's helper and the
    plan keeps none (measured not to help, or no site any more); else left alone.
    """
    user = str(uf.user.name)
    want = helper.command_for(user) if helper is not None else None
    if want is not None:
        return True, want
    now = uf.goenv.values.get("GOCACHEPROG") if uf.goenv else None
    return (True, None) if now and now.startswith(BUILDCACHE_HELPER) else (False, None)
