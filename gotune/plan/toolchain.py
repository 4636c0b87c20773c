"""The Go toolchain decision: which version, from where, and whether it changes.

Tarball installs live in versioned directories (``/usr/local/go-<version>``)
with ``/usr/local/go`` a symlink switched atomically (``operations/toolchain.py``).
"""

from __future__ import annotations

from gotune.facts.model import Facts
from gotune.plan.model import Decision
from gotune.settings import Settings

GO_PREFIX = "/usr/local"
GO_LINK = f"{GO_PREFIX}/go"


def go_root(version: str) -> str:
    return f"{GO_PREFIX}/go-{version}"


def plan_toolchain(facts: Facts, settings: Settings) -> Decision:
    """Install ``gotune_go_version`` when the user's go is missing or another version."""
    go = facts.go or {}
    have = go.get("GOVERSION")  # "go1.22.3"
    goroot = go.get("GOROOT")
    used = [f"go.GOVERSION={have or 'none'}", f"go.GOROOT={goroot or 'none'}"]
    want = settings.go_version
    source = settings["gotune_go_source"]
    if want is None:
        return Decision(
            "go",
            have,
            "unchanged",
            "gotune_go_version is not set: the toolchain is left alone",
            used,
            False,
            None,
            have,
        )
    if source == "distro":
        ok = have is not None and have.startswith(f"go{want}")
        reason = (
            f"go{want} from the distribution is installed"
            if ok
            else f"install the distribution's Go package ({have or 'no go'} today, {want} wanted)"
        )
        return Decision("go", want, "distro", reason, used, not ok, None, have)
    ours = goroot in (GO_LINK, go_root(want))
    if have == f"go{want}" and ours:
        return Decision(
            "go", want, "tarball", f"go{want} is installed at {GO_LINK}", used, False, None, have
        )
    why = "no go on PATH" if have is None else f"{have} at {goroot} today"
    return Decision(
        "go",
        want,
        "tarball",
        f"install go{want} to {go_root(want)} from the checked tarball ({why})",
        used,
        True,
        None,
        have,
        {"goroot": go_root(want), "link": GO_LINK},
    )
