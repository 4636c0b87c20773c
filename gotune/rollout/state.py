"""The rollout's state file: every host's wave, outcome and settings digest, on disk.

One JSON document, rewritten atomically (a fsynced temporary file renamed over it)
each time a host's outcome changes, so a rollout killed at any moment (Ctrl-C, a lost
SSH connection, ``kill -9``) leaves the last complete document; ``--resume`` reads it
and skips the hosts that passed with the same settings (``Settings.digest()``).

It names the inventory it belongs to (its path and a digest of its host list), so a
state file from another inventory is refused rather than mixed in::

    {"format": 1, "inventory": {"path": "/abs/fleet.py", "hosts_digest": "…", "hosts": 12},
     "waves": "1,10%,100%", "max_fail": "0", "gate": "slower",
     "status": "running"|"complete"|"halted"|"interrupted", "reason": null,
     "started": 1700000000.0, "updated": …,
     "hosts": {"web1": {"wave": 1, "outcome": "passed", "digest": "…", "time": …,
                        "changed": 14, "verdict": "pass", "gate": [], ...}}}
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gotune.agent.fsutil import write_atomic
from gotune.errors import GotuneError, UsageError

FORMAT = 1
# Outcomes of a host. PENDING: not yet worked on by this rollout; APPLYING: its wave
# started (a host still APPLYING after a crash is done again on --resume); PASSED and
# FAILED: decided (FAILED covers apply and gate); UNREACHABLE: never touched.
PENDING, APPLYING, PASSED, FAILED, UNREACHABLE = (
    "pending", "applying", "passed", "failed", "unreachable")  # fmt: skip
# Outcomes that spend the failure budget.
COUNTED = frozenset({FAILED, UNREACHABLE})
# A rollout's status: still going (or killed while going), done, stopped by the budget,
# or stopped by the user.
RUNNING, COMPLETE, HALTED, INTERRUPTED = "running", "complete", "halted", "interrupted"


@dataclass(frozen=True)
class Identity:
    """Which inventory a state file belongs to: its path and its host list."""

    path: str
    hosts_digest: str
    hosts: int

    @classmethod
    def of(cls, spec: str, names: list[str]) -> Identity:
        """+ spec: the inventory as given (a file is named by its absolute path)
        + names: its hosts in inventory order (order matters: it decides the waves)"""
        path = Path(spec)
        where = str(path.resolve()) if path.is_file() else spec
        digest = hashlib.sha256("\n".join(names).encode()).hexdigest()
        return cls(where, digest, len(names))


def default_path(spec: str) -> Path:
    """Beside the inventory file (``fleet.py`` -> ``fleet.rollout.json``); else in the
    current directory (``gotune-rollout.json``)."""
    path = Path(spec)
    if path.is_file():
        return path.with_name(path.name.rsplit(".", 1)[0] + ".rollout.json")
    return Path("gotune-rollout.json")


@dataclass
class RolloutState:
    """The document and where it lives; ``update`` changes one host and saves."""

    path: Path
    doc: dict[str, Any] = field(default_factory=dict)

    @property
    def hosts(self) -> dict[str, dict[str, Any]]:
        hosts: dict[str, dict[str, Any]] = self.doc["hosts"]
        return hosts

    def update(self, name: str, **values: Any) -> None:
        """Set fields of one host's record, stamp the time, and save at once.

        + name: the host
        + values: fields of its record (``outcome``, ``changed``, ``verdict`` ...)
        """
        self.hosts[name].update(values, time=round(time.time(), 3))
        self.save()

    def set_status(self, status: str, reason: str | None = None) -> None:
        """The rollout's status and why it stopped; saved at once."""
        self.doc["status"], self.doc["reason"] = status, reason
        self.save()

    def failed(self) -> list[str]:
        """Hosts that spend the budget, in inventory order."""
        return [n for n, h in self.hosts.items() if h["outcome"] in COUNTED]

    def save(self) -> None:
        """Write the whole document atomically (temp file, fsync, rename)."""
        self.doc["updated"] = round(time.time(), 3)
        text = json.dumps(self.doc, indent=1, sort_keys=True) + "\n"
        try:
            write_atomic(self.path, text.encode())
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise GotuneError(f"cannot write the rollout state {self.path}: {why}") from None


def start(path: Path, identity: Identity, wave_of: dict[str, int], settings: dict[str, Any],
          **options: str) -> RolloutState:
    """A new state for a fresh rollout: every host PENDING in its wave.

    + path: where to write it
    + identity: the inventory it belongs to
    + wave_of: host name -> its wave number (1 is the canary)
    + settings: host name -> its settings digest
    + options: the flags that shaped it (``waves``, ``max_fail``, ``gate``), kept for --resume
    """
    now = round(time.time(), 3)
    doc: dict[str, Any] = {
        "format": FORMAT, "inventory": identity.__dict__, **options,
        "status": RUNNING, "reason": None, "started": now, "updated": now,
        "hosts": {name: {"wave": wave, "outcome": PENDING, "digest": settings[name],
                         "time": now} for name, wave in wave_of.items()},
    }  # fmt: skip
    return RolloutState(path, doc)


def read(path: Path, identity: Identity, resume: bool) -> RolloutState | None:
    """The state at ``path`` when it belongs to this inventory; None when a new rollout
    may start there. A ``UsageError`` (nothing touched) for a file of another inventory,
    one that is not a state file, or ``--resume`` with nothing to resume.

    + path: the state file
    + identity: the inventory being rolled out
    + resume: the user asked to continue the rollout recorded there
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if resume:
            raise UsageError(f"--resume: no rollout to resume: {path} does not exist") from None
        return None
    except OSError as exc:
        raise UsageError(f"cannot read the rollout state {path}: {exc.strerror}") from None
    try:
        doc = json.loads(text)
        saved = Identity(**doc["inventory"])
        if doc.get("format") != FORMAT or not isinstance(doc.get("hosts"), dict):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{path} is not a gotune rollout state file") from None
    if saved.path != identity.path:
        raise UsageError(f"{path} records the rollout of {saved.path}, not of {identity.path}: "
                         "name another file with --state")
    if saved.hosts_digest != identity.hosts_digest:
        if resume:
            raise UsageError(f"--resume: the hosts of {identity.path} changed since {path} was "
                             "written: start a new rollout (without --resume)")
        return None
    return RolloutState(path, doc) if resume else None
