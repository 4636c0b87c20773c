"""Facts of the team build cache on a host: the site it serves, the helper it built, the figures.

``parse_installed`` reads the collector's copies of the site's unit file or supervisor
script and of the helper's source stamp (``InstalledBuildcache``); the plan compares
them with what it wants. ``HelperSource`` and ``BuildcacheMeasured`` are the same
things at operation time: whether the helper must be built again, whether it must be
measured again.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from pyinfra.api import FactBase

from gotune.agent.paths import BUILDCACHE_HELPER_SHA, BUILDCACHE_RECORD
from gotune.facts.mirror import cache_dir_of
from gotune.facts.model import InstalledBuildcache
from gotune.facts.state import parse_json_object

SERVE = " buildcache serve "
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def source_sha(text: str | None) -> str | None:
    """The SHA-256 in a helper's source stamp; None when absent or garbled."""
    value = (text or "").strip()
    return value if _SHA256.match(value) else None


def parse_installed(unit: str | None, supervisor: str | None,
                    helper_stamp: str | None) -> InstalledBuildcache | None:
    """What gotune installed for the build cache (None: nothing).

    + unit: the site's systemd unit file; supervisor: its supervisor script (no systemd)
    + helper_stamp: the SHA-256 of the source the helper was built from
    """
    runner, text = ("systemd", unit) if unit is not None else ("supervisor", supervisor)
    helper = source_sha(helper_stamp)
    if text is None and helper is None:
        return None
    return InstalledBuildcache(
        cache_dir=cache_dir_of(text, SERVE) if text is not None else None,
        runner=runner if text is not None else None,
        helper_source_sha256=helper,
    )


class HelperSource(FactBase[str]):
    """
    The SHA-256 of the source the installed GOCACHEPROG helper was built from, or None.

    .. code:: python

        "4be1...e0"
    """

    def command(self, path: str = BUILDCACHE_HELPER_SHA) -> str:
        return f"! test -f {shlex.quote(path)} || cat {shlex.quote(path)}"

    def process(self, output: list[str]) -> str | None:  # type: ignore[override]
        return source_sha("\n".join(output))


class BuildcacheMeasured(FactBase[dict[str, Any]]):
    """
    The helper's A/B record (``/var/lib/gotune/buildcache.json``), ``{}`` when none; the
    planner reads the same from the collector (``facts.gotune.buildcache_measured``).

    .. code:: python

        {"helper_sha256": "4be1...", "site": "http://10.0.0.5:3001", "keep": True,
         "cold": {"site_median_s": 1.9, "plain_median_s": 31.2, ...}, "noop": {...}}
    """

    default = dict

    def command(self, path: str = BUILDCACHE_RECORD) -> str:
        return f"! test -f {shlex.quote(path)} || cat {shlex.quote(path)}"

    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_json_object("\n".join(output)) or {}
