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


def cache_dir_of(text: str) -> str | None:
    """The ``--cache-dir`` on the ``mirror serve`` line of a unit file or supervisor."""
    for line in text.splitlines():
        if " mirror serve " not in line:
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
    The pid of the running mirror supervisor (non-systemd hosts), or None.

    .. code:: python

        4242
    """

    def command(self) -> str:
        return (
            f"! test -f {PIDFILE} || {{ pid=$(cat {PIDFILE}); "
            'case "$pid" in *[!0-9]*|"") ;; *) ! test -d "/proc/$pid" || echo "$pid" ;; esac; }'
        )

    def process(self, output: list[str]) -> int | None:  # type: ignore[override]
        text = "".join(output).strip()
        return int(text) if text.isdigit() else None
