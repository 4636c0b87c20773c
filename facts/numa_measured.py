"""The NUMA wrappers' measured figures on a host (``/var/lib/gotune/numa.json``).

Written by ``gotune/numa_measure.py`` when apply measures a wrapper against the
plain tool; read back here so apply (``operations/numa.py``) and the plan
(``gotune.plan.numa.plan_numa(measured=...)``) see why a wrapper stayed or went.
"""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api import FactBase

from gotune.plan.numa import MEASURED_PATH


def parse_measured(text: str) -> dict[str, dict[str, Any]]:
    """The per-tool entries of a record; garbled or foreign JSON is no record at all."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    tools = data.get("tools") if isinstance(data, dict) else None
    if not isinstance(tools, dict):
        return {}
    return {str(k): v for k, v in tools.items() if isinstance(v, dict)}


class NumaMeasured(FactBase[dict[str, dict[str, Any]]]):
    """
    The measured figures per wrapped tool, ``{}`` when nothing was measured.

    .. code:: python

        {"go": {"numactl_args": ["--interleave=0,1"], "plain_median_s": 0.41,
                "wrapped_median_s": 0.42, "gain": -0.02, "threshold": 0.03,
                "keep": False, "pairs": 7, "wrapper_sha256": "9f2c...", ...}}
    """

    default = dict

    def command(self, path: str = MEASURED_PATH) -> str:
        from shlex import quote

        return f"! test -f {quote(path)} || cat {quote(path)}"

    def process(self, output: list[str]) -> dict[str, dict[str, Any]]:
        return parse_measured("\n".join(output))
