"""Waves and the failure budget: ``--waves 1,10%,100%`` and ``--max-fail N|P%``, parsed.

Waves read as Ansible's ``serial``: each item is a number of hosts or a percentage of
the *whole* fleet, the last item repeats until every host has a wave, and a wave has at
least one host. The first wave is the canary. Hosts keep their inventory order, but
for the ones others depend on, which go first (``serving_first``): the same inventory,
settings and list always give the same waves (what ``--resume`` relies on).

The budget is fleet-wide, across all waves: the number of hosts that may fail (not
reached, apply failed, gate failed) before the rollout halts. A percentage is of the
whole fleet, rounded down: ``10%`` of 12 hosts allows one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gotune.errors import UsageError

if TYPE_CHECKING:
    from gotune.settings import Settings

# Canary, then a tenth of the fleet, then the rest: a bad setting reaches one host,
# then a few, before it can reach all of them.
DEFAULT_WAVES = "1,10%,100%"
# No failure is allowed unless the user says so: one failed host halts the rollout.
DEFAULT_MAX_FAIL = "0"
_NUMBER = re.compile(r"^[0-9]+$")
_PERCENT = re.compile(r"^([0-9]+(?:\.[0-9]+)?)%$")


@dataclass(frozen=True)
class WaveSize:
    """One item of ``--waves``: a count of hosts, or a percentage of the fleet."""

    value: float
    percent: bool

    def hosts(self, fleet: int) -> int:
        """How many hosts this item stands for in a fleet of ``fleet`` (at least 1)."""
        if not self.percent:
            return int(self.value)
        return max(1, math.floor(self.value * fleet / 100))

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.percent else str(int(self.value))


def parse_waves(spec: str) -> list[WaveSize]:
    """``"1,10%,100%"`` -> wave sizes; a ``UsageError`` naming the bad item otherwise.

    + spec: comma-separated positive counts and percentages above 0 and at most 100
    """
    items = [item.strip() for item in spec.split(",")]
    sizes = []
    for item in items:
        number, percent = _NUMBER.match(item), _PERCENT.match(item)
        if number and int(item) >= 1:
            sizes.append(WaveSize(int(item), False))
        elif percent and 0 < float(percent.group(1)) <= 100:
            sizes.append(WaveSize(float(percent.group(1)), True))
        else:
            raise UsageError(
                f"--waves: {item!r} is not a wave size (a number of hosts of at least 1, or a "
                f"percentage above 0% and at most 100%, e.g. {DEFAULT_WAVES})"
            )
    return sizes


def serving_first(names: list[str], settings: Mapping[str, Settings]) -> list[str]:
    """The fleet in the order the waves take it: team build cache sites first, then the
    builders that fill them, then everyone else, each group in inventory order.

    A developer's apply measures its build cache helper against the site and keeps it
    only where it helps: a site not yet deployed, or not yet warmed by a builder, would
    show nothing and leave every earlier host to measure again. And a site that fails
    halts the rollout before any host that would ask it is touched.

    + names: every host of the fleet, in inventory order
    + settings: each host's validated settings
    """

    def rank(name: str) -> int:
        own = settings[name]
        return 0 if own.buildcache_serves else 1 if own.buildcache_builder else 2

    return sorted(names, key=rank)


def split(names: list[str], sizes: list[WaveSize]) -> list[list[str]]:
    """The hosts of each wave, in the order given; the last size repeats.

    + names: every host of the fleet, in the order the waves take them
    + sizes: ``parse_waves``'s result
    """
    waves: list[list[str]] = []
    start = 0
    while start < len(names):
        size = sizes[min(len(waves), len(sizes) - 1)].hosts(len(names))
        waves.append(names[start : start + size])
        start += size
    return waves


@dataclass(frozen=True)
class Budget:
    """The fleet-wide failure budget: how many failed hosts the rollout tolerates."""

    spec: str
    allowed: int

    def exceeded(self, failed: int) -> bool:
        """True once more hosts failed than the budget allows."""
        return failed > self.allowed


def parse_budget(spec: str, fleet: int) -> Budget:
    """``"2"`` or ``"10%"`` (of ``fleet`` hosts, rounded down) -> a Budget.

    + spec: a count of hosts (0 or more) or a percentage from 0% to 100%
    + fleet: how many hosts the inventory has
    """
    text = spec.strip()
    percent = _PERCENT.match(text)
    if _NUMBER.match(text):
        return Budget(text, int(text))
    if percent and float(percent.group(1)) <= 100:
        return Budget(text, math.floor(float(percent.group(1)) * fleet / 100))
    raise UsageError(f"--max-fail: {spec!r} is not a number of hosts (0, 1, ...) or a "
                     "percentage of the fleet (0% to 100%)")
