"""Cgroups of sandbox hosts: the list of every process a host runs, and its disk throttle.

A host that boots systemd or mounts slow storage gets its own cgroup, named
after its session dir (``gotune-sandbox/<session>/<run>-<host>``), in:

- the ``name=systemd`` hierarchy (or cgroup2 alone on a unified machine): every
  process the host ever starts stays below it (a container cannot leave it), so
  teardown kills exactly those processes, however they daemonised;
- ``unified`` (cgroup2 beside v1) for systemd hosts: systemd-nspawn places the
  container's ``payload/`` and ``supervisor/`` below the launcher's own cgroup in
  both hierarchies, never at their roots;
- ``blkio`` (v1) for an ``hdd`` host: the read/write IOPS limits of its disk.

The launcher joins them itself (``join_lines``) before it starts anything.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from tests.sandbox_state import POLL_INTERVAL, STOP_TIMEOUT

PARENT = "gotune-sandbox"
_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")


def hierarchies() -> dict[str, Path]:
    """Mounted cgroup hierarchies by role: ``track``, ``unified``, ``blkio``."""
    found: dict[str, Path] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        head, _, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        point, fstype, options = Path(fields[4]), rest[0], rest[2].split(",")
        if fstype == "cgroup2":
            found.setdefault("unified", point)
        elif fstype == "cgroup" and "name=systemd" in options:
            found.setdefault("track", point)
        elif fstype == "cgroup" and "blkio" in options:
            found.setdefault("blkio", point)
    if "track" not in found and "unified" in found:
        found["track"] = found["unified"]
    return found


@dataclass
class HostCgroups:
    """One host's cgroup in each hierarchy it needs (paths relative to each root)."""

    rel: str  # gotune-sandbox/<session>/<run>-<host>
    roots: dict[str, str]  # role -> hierarchy mount point

    @classmethod
    def make(cls, session: str, run: str, host: str, roles: tuple[str, ...]) -> HostCgroups:
        for part in (session, run, host):
            if not _NAME_RE.match(part):
                raise ValueError(f"bad cgroup name part {part!r}")
        found = hierarchies()
        missing = [r for r in roles if r not in found]
        if missing:
            raise RuntimeError(f"no cgroup hierarchy for {', '.join(missing)} on this machine")
        roots = {role: str(found[role]) for role in roles}
        return cls(f"{PARENT}/{session}/{run}-{host}", roots)

    def paths(self) -> list[Path]:
        """The host's cgroup dirs, one per distinct hierarchy."""
        return [Path(p) / self.rel for p in dict.fromkeys(self.roots.values())]

    def path(self, role: str) -> Path:
        return Path(self.roots[role]) / self.rel

    def create(self) -> None:
        for p in self.paths():
            p.mkdir(parents=True, exist_ok=True)

    def join_lines(self) -> list[str]:
        """Shell lines that move the running shell into every one of the host's cgroups."""
        return [f"echo $$ > {p}/cgroup.procs" for p in self.paths()]

    def throttle(self, majmin: str, read_iops: int, write_iops: int) -> None:
        """IOPS limits on one device for everything in the host (cgroup v1 blkio)."""
        blkio = self.path("blkio")
        (blkio / "blkio.throttle.read_iops_device").write_text(f"{majmin} {read_iops}\n")
        (blkio / "blkio.throttle.write_iops_device").write_text(f"{majmin} {write_iops}\n")

    def procs(self) -> set[int]:
        """Every process in the host's cgroups, container sub-cgroups included."""
        found: set[int] = set()
        for top in self.paths():
            for procs in top.rglob("cgroup.procs") if top.is_dir() else ():
                with contextlib.suppress(OSError):
                    found.update(int(x) for x in procs.read_text().split())
        return found

    def kill(self) -> None:
        """SIGKILL everything in the host's cgroups until they are empty."""
        deadline = time.monotonic() + STOP_TIMEOUT
        while victims := self.procs():
            for pid in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"sandbox: processes {sorted(victims)} in {self.rel} do not exit"
                )
            time.sleep(POLL_INTERVAL)

    def remove(self) -> None:
        """Remove the (empty) cgroup dirs, deepest first, and the session's parents if empty."""
        for top in self.paths():
            if not top.is_dir():
                continue
            for sub in sorted(
                (d for d in top.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)
            ):
                _rmdir(sub)
            _rmdir(top)
            for parent in (top.parent, top.parent.parent):  # <session>, gotune-sandbox
                with contextlib.suppress(OSError):
                    parent.rmdir()

    def record(self) -> dict[str, object]:
        return {"rel": self.rel, "roots": self.roots}

    @classmethod
    def from_record(cls, data: object) -> HostCgroups | None:
        if not isinstance(data, dict):
            return None
        rel, roots = data.get("rel"), data.get("roots")
        if not isinstance(rel, str) or not rel.startswith(PARENT + "/") or ".." in rel:
            return None
        if not isinstance(roots, dict):
            return None
        return cls(rel, {str(k): str(v) for k, v in roots.items()})


def _rmdir(path: Path) -> None:
    """rmdir a cgroup; one that just emptied may refuse for a moment (EBUSY)."""
    deadline = time.monotonic() + STOP_TIMEOUT
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(POLL_INTERVAL)


def orphans(live_sessions: set[str]) -> list[HostCgroups]:
    """Host cgroups whose session is not in ``live_sessions`` (its dir is gone)."""
    found: list[HostCgroups] = []
    roots = {str(p) for p in hierarchies().values()}
    for root in roots:
        parent = Path(root) / PARENT
        if not parent.is_dir():
            continue
        for session in parent.iterdir():
            if not session.is_dir() or session.name in live_sessions:
                continue
            for host in session.iterdir():
                if host.is_dir():
                    found.append(
                        HostCgroups(f"{PARENT}/{session.name}/{host.name}", {"track": root})
                    )
            if not any(session.iterdir()):
                with contextlib.suppress(OSError):
                    session.rmdir()
    return found
