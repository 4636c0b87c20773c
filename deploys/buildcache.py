"""The buildcache component: a team build cache for Go (GOCACHEPROG), set up, sized, verified.

Save → apply → verify → undo, side by side:

- plan: ``gotune/plan/buildcache.py`` (the site on the mirror's host or
  ``gotune_buildcache_server``; the helper for every developer whose go has GOCACHEPROG
  and a site to ask; builders write, the others read; kept where measured to help)
- apply, ``deploy_buildcache`` (before GOENV): the site runs ``gotune buildcache serve``
  as the ``gotune-buildcache`` system user (``templates/buildcache-unit.service.j2``,
  sandboxed like the mirror; or supervised where systemd does not run) with the SHA-256
  of the builders' token; builders get the token, one root-made copy per developer user
  that only they can read; the helper (``templates/buildcache-cacheprog.go.j2``) is built
  on the host by its own go. Then GOENV carries GOCACHEPROG (``deploys/goenv.py``), and
  ``measure_buildcache`` (after GOENV) times the helper as the first developer on verify's
  generated workload (and cmd/go) and takes it out of GOENV at once when it does not
  help; the next plan reads the figures. A builder builds the same workload once with
  its token instead: the site is then warm for every reader's measurement.
- verify: ``gotune/verify/checks/buildcache.py`` (the site answers, the helper runs, go
  gets outputs through it)
- undo: every file, directory and unit is recorded first; the GOENV file is restored
  byte for byte, so GOCACHEPROG goes with it

The token is made once on the control machine (``gotune_buildcache_token_file``, default
``~/.config/gotune/buildcache.token``, mode 0600) and never enters the plan or a log.
Alone: ``pyinfra INVENTORY deploys/buildcache.py``.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Users
from pyinfra.operations import files

from gotune.agent.buildcache.token import digest, new_token
from gotune.agent.paths import (
    AGENT_DIR,
    AGENT_PATH,
    BUILDCACHE_CRON,
    BUILDCACHE_ETC,
    BUILDCACHE_HELPER_DIR,
    BUILDCACHE_LOG,
    BUILDCACHE_MEASURE_ROOT,
    BUILDCACHE_PIDFILE,
    BUILDCACHE_SUPERVISOR,
    BUILDCACHE_TOKEN_DIGEST,
    BUILDCACHE_TOKENS,
    BUILDCACHE_UNIT_FILE,
    WEAR_STATE,
)
from gotune.deploys.agent import (
    AgentService,
    install_agent,
    python3_path,
    run_service,
    service_cache,
)
from gotune.operations import buildcache, control, state
from gotune.plan.model import BuildcacheHelper, BuildcacheSite, HostPlan

q = shlex.quote

SERVICE_USER = "gotune-buildcache"
# Where the token is kept on the control machine when no setting names a file.
DEFAULT_TOKEN_FILE = "~/.config/gotune/buildcache.token"  # noqa: S105 - a path, not a secret


def control_token(path_setting: str | None) -> str:
    """The builders' token from the control machine's file; made (0600) on first use,
    but for a dry run, which shows the token files as changing ("")."""
    path = Path(os.path.expanduser(path_setting or DEFAULT_TOKEN_FILE))
    if not path.exists() and control.dry():
        return ""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_token() + "\n")
    return path.read_text(encoding="utf-8").strip()


def serve_argv(python: str, site: BuildcacheSite) -> list[str]:
    """The site's command line."""
    argv = [
        python, AGENT_PATH, "buildcache", "serve",
        "--listen", f"{site.listen}:{site.port}",
        "--cache-dir", str(site.value),
        "--max-cache-size", str(site.max_bytes),
        "--token-digest-file", BUILDCACHE_TOKEN_DIGEST,
        "--wear-state", WEAR_STATE,
    ]  # fmt: skip
    if site.allow:
        argv += ["--allow", ",".join(site.allow)]
    return argv


def _serve(hp: HostPlan, site: BuildcacheSite, token: str) -> None:
    cache_dir = str(site.value)
    service_cache(SERVICE_USER, cache_dir, "Build cache", "750")
    state.record_created(name=f"Record {BUILDCACHE_ETC} for undo", path=BUILDCACHE_ETC)
    files.directory(name=f"Create {BUILDCACHE_ETC}", path=BUILDCACHE_ETC, mode="755")
    state.file(
        name="The builders' token digest (the service reads it)", path=BUILDCACHE_TOKEN_DIGEST,
        content=digest(token) + "\n", user="root", group=SERVICE_USER, mode=0o640,
    )  # fmt: skip
    python = python3_path() or "/usr/bin/python3"
    run_service(AgentService(
        name="gotune-buildcache", what="the team build cache", user=SERVICE_USER,
        command=" ".join(q(a) for a in serve_argv(python, site)),
        unit_file=BUILDCACHE_UNIT_FILE, unit_template="buildcache-unit.service.j2",
        unit_values={"listen": site.listen, "port": site.port, "cache_dir": cache_dir},
        supervisor=BUILDCACHE_SUPERVISOR, pidfile=BUILDCACHE_PIDFILE, log=BUILDCACHE_LOG,
        cron=BUILDCACHE_CRON,
    ), cron=hp.facts.platform.cron)  # fmt: skip


def _builder_tokens(hp: HostPlan, token: str) -> None:
    """Each developer user's copy of the token, readable by that user only."""
    accounts: dict[str, Any] = host.get_fact(Users)
    state.record_created(name=f"Record {BUILDCACHE_TOKENS} for undo", path=BUILDCACHE_TOKENS)
    files.directory(name=f"Create {BUILDCACHE_TOKENS}", path=BUILDCACHE_TOKENS, mode="755")
    for user in hp.plan.caches:
        state.file(
            name=f"{user}'s build cache token", path=f"{BUILDCACHE_TOKENS}/{user}",
            content=token + "\n", user=user, group=str(accounts[user]["group"]), mode=0o400,
        )  # fmt: skip


def _wanted(helper: BuildcacheHelper | None) -> bool:
    """Whether the helper is built here: planned, or measured before (measured again when
    its source changes); never for a go without GOCACHEPROG."""
    return helper is not None and helper.go is not None and (
        helper.value is not None or helper.measured is not None)


@deploy("gotune team build cache")
def deploy_buildcache(hp: HostPlan) -> None:
    """Serve the site, give builders their token and build the helper (as planned)."""
    plan = hp.plan.buildcache
    if plan is None:
        host.noop("no team build cache to serve or ask")
        return
    helper = plan.helper
    needs_token = plan.site is not None or (helper is not None and helper.builder)
    token = control_token(hp.settings.buildcache_token_file) if needs_token else ""
    if plan.site is not None:
        _serve(hp, plan.site, token)
    if helper is not None and helper.builder and helper.value is not None and hp.plan.caches:
        _builder_tokens(hp, token)
    if _wanted(helper):
        assert helper is not None and helper.go is not None
        state.record_created(name=f"Record {BUILDCACHE_HELPER_DIR} for undo",
                             path=BUILDCACHE_HELPER_DIR)
        buildcache.helper(name="Build the GOCACHEPROG helper with the host's go", go=helper.go)
        if hp.settings.buildcache_measure_runs and hp.plan.caches:  # the agent measures it
            state.record_created(name=f"Record {AGENT_DIR} for undo", path=AGENT_DIR)
            install_agent()
            state.record_created(name=f"Record {BUILDCACHE_MEASURE_ROOT} for undo",
                                 path=BUILDCACHE_MEASURE_ROOT)


@deploy("gotune team build cache: measure the helper")
def measure_buildcache(hp: HostPlan) -> None:
    """Time the helper as the first developer (after GOENV carries it); keep it if it helps."""
    plan = hp.plan.buildcache
    helper = plan.helper if plan else None
    users = list(hp.plan.caches)
    if helper is None or not _wanted(helper) or not users:
        host.noop("no GOCACHEPROG helper to measure")
        return
    runs = hp.settings.buildcache_measure_runs
    if runs == 0:
        host.noop("gotune_buildcache_measure_runs is 0: the helper is kept unmeasured")
        return
    assert helper.go is not None and helper.go_version is not None
    args: dict[str, Any] = {
        "helper_sha": buildcache.source_sha256(buildcache.helper_sources()),
        "site": helper.site, "go_version": helper.go_version, "go": helper.go, "users": users,
        "cold_runs": runs, "packages": hp.settings.buildcache_measure_packages,
        "cmd_go": hp.settings.buildcache_measure_cmd_go,
    }  # fmt: skip
    # Two operations, builders' first: pyinfra runs each operation on every host of the
    # run before the next, so readers measure a site that this run's builders warmed.
    if helper.builder:
        buildcache.measured(
            name="Warm the team build cache: build verify's generated workload with the "
            "builder's token", token_file=f"{helper.token_dir}/{users[0]}", **args,
        )  # fmt: skip
    else:
        buildcache.measured(
            name="Measure the GOCACHEPROG helper on verify's generated workload (cold build "
            "with the site vs without, warm build with the helper vs without); keep it only "
            "if it helps", **args,
        )  # fmt: skip


# `pyinfra INVENTORY deploys/buildcache.py` executes this file (not as an import).
if __name__ != "gotune.deploys.buildcache":
    from gotune.deploys.host import current_host_plan

    _hp = current_host_plan()
    deploy_buildcache(hp=_hp)
    measure_buildcache(hp=_hp)
