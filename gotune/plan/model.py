"""What the planner returns: decisions with their reasons, and warnings.

``Plan.to_dict`` is the JSON ``gotune plan --json`` prints for one host:
``{"decisions": [{key, value, medium, reason, facts_used, ...}], "warnings": [...]}``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Decision:
    """One thing gotune decides for a host or one of its users.

    + key: what is decided: ``GOCACHE``, ``GOMODCACHE``, ``GOTMPDIR`` or ``go`` (the toolchain)
    + value: the path or version wanted; None leaves Go's default (unset)
    + medium: where it lives: a storage class (nvme, ssd, hdd ...), ``tmpfs``, or for ``go``
      ``tarball``/``distro``/``unchanged``
    + reason: one line a user understands
    + facts_used: the facts the decision rests on, as ``name=value``
    + change: whether the host must change to match (False: already the best)
    + user: the developer user it is for (None: the whole host)
    + current: what is there today (path or version), when known
    + details: what apply needs besides the value (tmpfs size and mountpoint, snapshot path)
    """

    key: str
    value: str | None
    medium: str
    reason: str
    facts_used: list[str]
    change: bool
    user: str | None = None
    current: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Plan:
    decisions: list[Decision] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def find(self, key: str, user: str | None = None) -> Decision | None:
        for d in self.decisions:
            if d.key == key and d.user == user:
                return d
        return None

    @property
    def users(self) -> list[str]:
        return list(dict.fromkeys(d.user for d in self.decisions if d.user is not None))

    @property
    def changes(self) -> list[Decision]:
        return [d for d in self.decisions if d.change]

    def to_dict(self) -> dict[str, Any]:
        return {
            "decisions": [d.to_dict() for d in self.decisions],
            "warnings": list(self.warnings),
        }
