"""The one-round-trip pyinfra fact: everything gotune knows about a host.

Use it from a deploy::

    from gotune.facts.machine import Machine
    facts = host.get_fact(Machine, users=["dev"])   # facts.model.Facts
    facts.cpu.kinds, facts.numa.nodes, facts.users["dev"].paths["gocache"].class_

or from the shell: ``pyinfra @local fact gotune.facts.machine.Machine users=dev``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pyinfra.api import FactBase

from gotune.facts.caches import apply_users
from gotune.facts.collect import build_command, decode_sed_l, split_records
from gotune.facts.cpu import parse_cpu
from gotune.facts.memory import parse_memory
from gotune.facts.model import Facts
from gotune.facts.nics import parse_nics
from gotune.facts.numa import parse_numa
from gotune.facts.platform import parse_platform
from gotune.facts.state import has_cron, parse_state
from gotune.facts.storage import parse_devices, parse_mounts
from gotune.facts.sysfs import parse_int
from gotune.facts.wsl import parse_wsl

# Inputs whose absence says nothing: PID 1's environment is root-only (and
# hidden in some sandboxes); the container markers it may hold are also found elsewhere.
OPTIONAL_INPUTS = frozenset({"/proc/1/environ"})


def parse_output(lines: Iterable[str], users: Sequence[str] = ()) -> Facts:
    """Facts from the collector's output lines (as pyinfra hands them to ``process``).

    + users: the developer users the collector gathered ``go env`` and GOENV for

    Never raises on bad input: whatever cannot be read is None and listed in ``unknown``.
    """
    dump = split_records(decode_sed_l(lines))
    facts = Facts()
    if not dump.complete:
        facts.unknown.append("collector: output missing or cut short (is sed installed?)")
    facts.cpu = parse_cpu(dump, facts.unknown)
    facts.memory = parse_memory(dump, facts.unknown)
    facts.numa = parse_numa(dump, facts.cpu.online, facts.memory.total_bytes, facts.unknown)
    facts.storage.devices = parse_devices(dump)
    facts.storage.mounts = parse_mounts(dump, facts.storage.devices, facts.unknown)
    facts.nics = parse_nics(dump)
    facts.platform = parse_platform(dump, facts.cpu.arch, facts.cpu.flags, facts.unknown)
    facts.platform.cron = has_cron(dump)
    facts.gotune = parse_state(dump)
    facts.connected_uid = parse_int((dump.output("id") or "").split("\n", 1)[0])
    apply_users(dump, facts, list(users))
    if facts.platform.virtualization == "wsl2" and dump.live:
        facts.wsl = parse_wsl(dump, list(users), facts.unknown)
    for path, why in sorted(dump.errors.items()):
        if path not in OPTIONAL_INPUTS:
            facts.unknown.append(f"collector: {path}: {why}")
    return facts


class Machine(FactBase[Facts]):
    """
    Hardware, platform and Go facts of a host in one command (see facts/model.py).

    + users: the developer users whose ``go env``, GOENV file, home and caches matter
    + user: one developer user (the same as ``users=[user]``)
    + sysroot: read files below this root (a recorded /sys+/proc tree) instead of /
    + windows_profile: on WSL, the Windows user's profile as a Linux path (default: ask
      Windows through interop)

    .. code:: python

        Facts(cpu=Cpu(model="13th Gen Intel(R) Core(TM) i7-1370P", threads=20,
                      kinds=[CpuKind(name="P", cpus=[0, ..., 11]), CpuKind(name="E", ...)]),
              numa=Numa(nodes=[NumaNode(id=0, cpus=[0, ..., 19], memory_bytes=33269227520)]),
              storage=Storage(paths={"gocache": PathPlacement(class_="nvme", ...)}), ...)
    """

    def command(
        self, users: Sequence[str] | str = (), sysroot: str = "/", user: str | None = None,
        windows_profile: str | None = None,
    ) -> str:
        # A string (from ``pyinfra @local fact ... users=dev,ops``) is a comma-separated list.
        names = users.split(",") if isinstance(users, str) else list(users)
        self._users = [n for n in [*names, *([user] if user else [])] if n]
        return build_command(sysroot, self._users, windows_profile)

    @staticmethod
    def default() -> Facts:
        return Facts(unknown=["collector: did not run"])

    def process(self, output: list[str]) -> Facts:
        return parse_output(output, getattr(self, "_users", []))
