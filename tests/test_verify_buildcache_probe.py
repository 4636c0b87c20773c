"""verify's look at the GOCACHEPROG helper: started as go starts it, timed, closed.

The helper here is a stand-in script speaking the protocol's first and last lines
(the real helper is started by go in tests/test_buildcache_go.py and on sandbox hosts in
tests/test_buildcache_deploy.py); these tests are about how verify times it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gotune.agent.verify.buildcache import HELPER_STARTS, helper_start
from gotune.verify.checks.buildcache import checks

# Slow on its first start only (a cold page cache, a busy machine), then quick.
HELPER = """\
import json, os, sys, time
marker = sys.argv[1]
if not os.path.exists(marker):
    open(marker, "w").close()
    time.sleep(1)
print(json.dumps({"ID": 0, "KnownCommands": ["get", "put", "close"]}), flush=True)
request = json.loads(sys.stdin.readline())
print(json.dumps({"ID": request["ID"]}), flush=True)
"""


def test_the_fastest_of_several_starts_is_the_figure_and_every_start_is_kept(
    tmp_path: Path,
) -> None:
    script = tmp_path / "helper.py"
    script.write_text(HELPER)
    out = helper_start([sys.executable, str(script), str(tmp_path / "started")], {})
    assert out["ok"] and out["commands"] == ["get", "put", "close"], out
    assert len(out["starts_ms"]) == HELPER_STARTS and out["starts_ms"][0] >= 1000
    assert out["start_ms"] == min(out["starts_ms"]) < out["starts_ms"][0]
    (check,) = checks("dev", {"buildcache": {"helper": out}}, None)
    assert f"the fastest of {HELPER_STARTS}" in check["detail"]


def test_a_helper_that_says_nothing_fails_the_check_with_its_reason(tmp_path: Path) -> None:
    out = helper_start([sys.executable, "-c", "pass"], {})
    assert not out["ok"] and "starts_ms" not in out
    (check,) = checks("dev", {"buildcache": {"helper": out}}, None)
    assert not check["ok"] and check["name"] == "dev: build cache helper starts"
