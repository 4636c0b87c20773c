"""Facts of the module mirror gotune runs on a host: its unit or supervisor, its pid.

``parse_installed`` reads the collector's copies of the unit file and the
supervisor script (``InstalledMirror``: the cache directory the running mirror
serves, which the plan compares with the one it wants). ``MirrorSupervisor`` is
the operation-time fact the supervised runner checks (no systemd).
"""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase

from gotune.agent.paths import MIRROR_PIDFILE as PIDFILE
from gotune.facts.model import InstalledMirror


def cache_dir_of(text: str, serve: str = " mirror serve ") -> str | None:
    """The ``--cache-dir`` on the ``mirror serve`` line of a unit file or supervisor.

    + serve: the command's words (``" buildcache serve "`` for the build cache)
    """
    for line in text.splitlines():
        if serve not in line:
            continue
        try:
            argv = shlex.split(line.strip().removeprefix("ExecStart="))
        except ValueError:
            return None
        if "--cache-dir" in argv[:-1]:
            return argv[argv.index("--cache-dir") + 1]
    return None


def parse_installed(unit: str | None, supervisor: str | None) -> InstalledMirror | None:
    """The mirror gotune installed, from its unit file or supervisor script (None: none)."""
    if unit is not None:
        return InstalledMirror(cache_dir=cache_dir_of(unit), runner="systemd")
    if supervisor is not None:
        return InstalledMirror(cache_dir=cache_dir_of(supervisor), runner="supervisor")
    return None


class MirrorSupervisor(FactBase[int]):
    """
    The pid of the running supervisor of the mirror (non-systemd hosts), or of another
    agent service given its pid file (the build cache's); None when none runs.

    .. code:: python

        4242
    """

    def command(self, pidfile: str = PIDFILE) -> str:
        return (
            f"! test -f {pidfile} || {{ pid=$(cat {pidfile}); "
            'case "$pid" in *[!0-9]*|"") ;; *) ! test -d "/proc/$pid" || echo "$pid" ;; esac; }'
        )

    def process(self, output: list[str]) -> int | None:  # type: ignore[override]
        text = "".join(output).strip()
        return int(text) if text.isdigit() else None
