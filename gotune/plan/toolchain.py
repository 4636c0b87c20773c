"""The Go toolchain decision: which version, from where, and whether it changes.

Tarball installs live in versioned directories (``/usr/local/go-<version>``)
with ``/usr/local/go`` a symlink switched atomically (``operations/toolchain.py``).
"""

from __future__ import annotations

from gotune.facts.model import Facts
from gotune.plan.model import Decision, DistroToolchain, TarballToolchain
from gotune.settings import Settings

GO_PREFIX = "/usr/local"
GO_LINK = f"{GO_PREFIX}/go"
# What a user without Go is told to set (the README shows the same).
HOW_TO_GET_GO = (
    "set gotune_go_version with gotune_go_tarball and gotune_go_sha256 (a release from "
    "go.dev/dl), or gotune_go_source = 'distro' to install the distribution's package"
)


def go_root(version: str) -> str:
    return f"{GO_PREFIX}/go-{version}"


def plan_toolchain(facts: Facts, settings: Settings) -> tuple[Decision, list[str]]:
    """Install ``gotune_go_version`` when the user's go is missing or another version.

    + facts: the host's facts; the first developer user's ``go env`` says what is there
    """
    first = next(iter(facts.users.values()), None)
    go = (first.go if first else facts.go) or {}
    have = go.get("GOVERSION")  # "go1.22.3"
    goroot = go.get("GOROOT")
    used = [f"go.GOVERSION={have or 'none'}", f"go.GOROOT={goroot or 'none'}"]
    want = settings.go_version
    if want is None:
        warnings = []
        if have is None and first is not None:
            warnings.append(
                f"{first.user.name}: no go found (login PATH, /usr/local/go/bin): gotune leaves "
                f"the toolchain alone and verify cannot build; {HOW_TO_GET_GO}"
            )
        reason = "gotune_go_version is not set: the toolchain is left alone" + (
            " (and no go is installed)" if have is None else ""
        )
        return Decision(key="go", value=have, medium="unchanged", reason=reason, facts_used=used,
                        current=have), warnings
    if settings.go_source == "distro":
        ok = have is not None and have.startswith(f"go{want}")
        reason = (
            f"go{want} from the distribution is installed"
            if ok
            else f"install the distribution's Go package ({have or 'no go'} today, {want} wanted)"
        )
        return DistroToolchain(key="go", value=want, medium="distro", reason=reason,
                               facts_used=used, change=not ok, current=have), []
    assert settings.go_tarball is not None and settings.go_sha256 is not None  # validated
    ours = goroot in (GO_LINK, go_root(want))
    done = have == f"go{want}" and ours
    why = "no go on PATH" if have is None else f"{have} at {goroot} today"
    reason = (
        f"go{want} is installed at {GO_LINK}"
        if done
        else f"install go{want} to {go_root(want)} from the checked tarball ({why})"
    )
    return TarballToolchain(
        key="go", value=want, medium="tarball", reason=reason, facts_used=used,
        change=not done, current=have, version=want, tarball=settings.go_tarball,
        sha256=settings.go_sha256, goroot=go_root(want), link=GO_LINK,
    ), []
