"""The plan is one pure function of one facts document, and a wheel is all a user needs.

On sandbox hosts: the facts `gotune facts --json` prints, fed to `gotune plan
--facts`, give exactly the plan apply then prints and stores on the host; a home
on a tmpfs (which crashed the first landing's apply) applies and re-applies with
no change; and gotune installed from a built wheel, outside the checkout, plans,
applies and verifies.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SandboxFactory
from tests.test_apply import REPO, sh

USER = "dev"
TMPFS = {"gotune_users": [USER], "gotune_gocache_tmpfs": "always", "gotune_tmpfs_max_gib": 1}

pytestmark = [pytest.mark.sandbox]


def run_json(
    *args: str, python: str = sys.executable, cwd: Path = REPO, status: int = 0
) -> dict[str, Any]:
    out = subprocess.run(
        [python, "-m", "gotune", *args], capture_output=True, text=True, timeout=600, cwd=cwd
    )
    assert out.returncode == status, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def steady(plan: dict[str, Any]) -> Any:
    """The plan with every "N.N GiB free" figure blanked (see its use)."""
    return json.loads(re.sub(r"\d+(\.\d+)? [KMGT]?i?B free", "_ free", json.dumps(plan)))


def test_plan_from_saved_facts_is_the_plan_apply_carries_out(
    sandbox: SandboxFactory, tmp_path: Path
) -> None:
    box = sandbox(1, data=[TMPFS])
    host = box.hosts[0]
    host.add_user(USER)
    inventory = str(box.inventory)
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(run_json("facts", inventory, "--json")))
    planned = run_json("plan", inventory, "--facts", str(facts), "--json")["hosts"]["sbx1"]
    applied = run_json("apply", inventory, "--yes", "--json", "--no-verify")["hosts"]["sbx1"]
    assert applied["ok"] and applied["changed"] > 0
    # The host's / is this machine's disk, whose free space other tests change between
    # the two readings: the decisions must agree, the free-space figures they cite may not.
    assert steady(applied["plan"]) == steady(planned)
    stored = json.loads(sh(host, "cat /var/lib/gotune/plan.json"))
    assert stored == applied["plan"]
    again = run_json("apply", inventory, "--yes", "--json", "--no-verify")["hosts"]["sbx1"]
    assert again["changed"] == 0, [d for d in again["plan"]["decisions"] if d["change"]]
    undone = run_json("undo", inventory, "--yes", "--json")["hosts"]["sbx1"]
    assert "/var/lib/gotune/plan.json" in undone["restores"]["files"]
    assert sh(host, "test -e /var/lib/gotune/plan.json || echo gone") == "gone\n"


def test_a_home_on_tmpfs_applies_and_reapplies_without_change(sandbox: SandboxFactory) -> None:
    box = sandbox(1, data=[{"gotune_users": [USER], "gotune_gocache_tmpfs": "never"}])
    host = box.hosts[0]
    host.add_user(USER)
    sh(host, f"mount -t tmpfs -o size=64m,mode=0755 tmpfs /home/{USER} && "
             f"chown {USER}: /home/{USER}")  # fmt: skip
    first = run_json("apply", str(box.inventory), "--yes", "--json", "--no-verify")
    entry = first["hosts"]["sbx1"]
    assert entry["ok"], entry
    gocache = next(d for d in entry["plan"]["decisions"] if d["key"] == "GOCACHE")
    assert gocache["medium"] == "tmpfs" and gocache["kind"] == "keep"
    assert "lost at reboot" in gocache["reason"]
    again = run_json("apply", str(box.inventory), "--yes", "--json", "--no-verify")
    assert again["hosts"]["sbx1"]["changed"] == 0


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gotune from a wheel built from this checkout, in a venv outside it.

    The dependencies come from the test venv's site-packages through a path entry:
    that directory's own .pth files (the checkout's editable install) are not read
    from there, so ``import gotune`` can only find the wheel's copy.
    """
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: a build/ directory left in the checkout would carry stale modules.
    source = out / "source"
    skip = shutil.ignore_patterns(".venv", ".git", "build", "__pycache__", "*.egg-info")
    shutil.copytree(REPO, source, symlinks=True, ignore=skip)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = out.glob("gotune-*.whl")
    venv = out / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", purelib], capture_output=True, text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return venv


def test_the_wheel_holds_one_package_and_its_data(installed_wheel: Path) -> None:
    python = str(installed_wheel / "bin" / "python")
    where = subprocess.run(
        [python, "-c", "import gotune, gotune.facts.model; print(gotune.__file__)"],
        capture_output=True, text=True, check=True, cwd="/",
    ).stdout.strip()  # fmt: skip
    site = Path(where).parent.parent
    assert not str(where).startswith(str(REPO)), where
    for stray in ("facts", "deploys", "operations", "templates"):
        assert not (site / stray).exists(), stray
    assert (site / "gotune" / "templates" / "caches-tmpfs.mount.j2").is_file()
    assert not any(p.is_symlink() for p in (site / "gotune").iterdir())


def test_gotune_from_the_wheel_plans_applies_and_verifies(
    installed_wheel: Path, sandbox: SandboxFactory, tmp_path: Path
) -> None:
    box = sandbox(1, data=[TMPFS])
    box.hosts[0].add_user(USER)
    box.hosts[0].link_go()
    python = str(installed_wheel / "bin" / "python")
    inventory = str(box.inventory)
    plan = run_json("plan", inventory, "--json", python=python, cwd=tmp_path)
    assert plan["hosts"]["sbx1"]["decisions"]
    applied = run_json("apply", inventory, "--yes", "--json", "--no-verify", python=python,
                       cwd=tmp_path)["hosts"]["sbx1"]  # fmt: skip
    assert applied["ok"] and applied["changed"] > 0
    verified = run_json("verify", inventory, "--bench", "none", "--json", python=python,
                        cwd=tmp_path)["hosts"]["sbx1"]  # fmt: skip
    assert verified["expected_from"] == "plan" and verified["verdict"] == "pass"
    names = {c["name"] for c in verified["checks"] if c["ok"]}
    assert f"{USER}: tmpfs /var/cache/gotune/tmpfs/{USER} capped" in names
