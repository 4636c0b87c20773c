"""``gotune facts``: what each host has, in one command per host.

``gotune facts [INVENTORY] --json`` prints ``{"hosts": {NAME: facts}}`` (plus
``"unreachable": [NAME, ...]`` when some host could not be reached);
``gotune facts --sysroot DIR --json`` runs the same collector on this machine
over a recorded tree and prints that one facts document (the form
``gotune plan --facts FILE`` reads). Without ``--json`` a short summary per host.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gotune.errors import GotuneError
from gotune.facts.model import Facts

# The developer user when nothing names one: root owns what gotune finds over SSH.
FALLBACK_USER = "root"
# Seconds for one host's collector; statvfs and go env have their own, shorter limits.
COLLECT_TIMEOUT_S = 120


def run(args: argparse.Namespace) -> int:
    if args.sysroot:
        if args.inventory:
            raise GotuneError("--sysroot reads a recorded tree on this machine: give no INVENTORY")
        doc = facts_from_sysroot(args.sysroot)
        if args.json:
            print(json.dumps(doc.to_dict(), indent=1))
        else:
            print(summary(args.sysroot, doc))
        return 0
    hosts, unreachable = facts_from_inventory(args.inventory)
    if args.json:
        out: dict[str, Any] = {"hosts": {name: f.to_dict() for name, f in hosts.items()}}
        if unreachable:
            out["unreachable"] = unreachable
        print(json.dumps(out, indent=1))
    else:
        print("\n\n".join(summary(name, f) for name, f in hosts.items()))
        for name in unreachable:
            print(f"{name}: unreachable")
    return 0 if not unreachable else 1


def facts_from_sysroot(sysroot: str) -> Facts:
    """Facts of a recorded /sys + /proc tree, read by the collector with this machine's sh."""
    from gotune.facts.collect import collect_local
    from gotune.facts.machine import parse_output

    root = Path(sysroot)
    if not root.is_dir():
        raise GotuneError(f"--sysroot {sysroot}: not a directory")
    if not (root / "sys").is_dir() and not (root / "proc").is_dir():
        raise GotuneError(f"--sysroot {sysroot}: holds neither sys/ nor proc/")
    return parse_output(collect_local(str(root.resolve()), None, timeout=COLLECT_TIMEOUT_S))


def developer_user(host: Any) -> str:
    """``gotune_users``' first entry, else (for @local) the invoking user, else root."""
    users = host.data.get("gotune_users") or []
    if isinstance(users, list | tuple) and users and isinstance(users[0], str):
        return users[0]
    if host.name == "@local":
        from gotune.settings import default_users

        found = default_users("@local")
        if found:
            return found[0]
    return FALLBACK_USER


def facts_from_inventory(spec: str | None) -> tuple[dict[str, Facts], list[str]]:
    """Facts of every host of an inventory, fetched in parallel; and the unreachable hosts."""
    from gotune.facts.machine import Machine
    from gotune.inventory import connected

    with connected(spec) as state:
        active = [h for h in state.inventory if h in state.activated_hosts]
        unreachable = [h.name for h in state.inventory if h not in state.activated_hosts]
        jobs = {h.name: state.pool.spawn(_get, h, Machine, developer_user(h)) for h in active}
        for job in jobs.values():  # greenlets on pyinfra's pool: they run while we wait
            job.join(timeout=COLLECT_TIMEOUT_S)
        results: dict[str, Facts] = {}
        for name, job in jobs.items():
            if job.successful() and isinstance(job.value, Facts):
                results[name] = job.value
            else:
                unreachable.append(name)
    return results, unreachable


def _get(host: Any, fact: Any, user: str) -> Facts:
    got: Facts = host.get_fact(fact, user=user, _timeout=COLLECT_TIMEOUT_S)
    return got


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.1f} GiB"


def _ranges(cpus: list[int]) -> str:
    """[0,1,2,5] -> "0-2,5"."""
    out: list[str] = []
    for c in sorted(cpus):
        if out and out[-1].split("-")[-1] == str(c - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{c}"
        else:
            out.append(str(c))
    return ",".join(out) or "-"


def summary(name: str, f: Facts) -> str:
    """A few lines per host: the topology at a glance."""
    p, c, m = f.platform, f.cpu, f.memory
    lines = [
        f"{name}: {p.distro or '?'} {p.distro_version or ''} · kernel {p.kernel or '?'} · "
        f"{p.arch or '?'} · {p.virtualization} · systemd {'yes' if p.systemd else 'no'}",
        f"  cpu     {c.model or '?'}"
        + (f" (x86-64-{c.x86_64_level})" if c.x86_64_level else "")
        + f" · {c.packages or '?'} pkg, {c.cores or '?'} cores, {c.threads or '?'} threads",
    ]
    if c.kinds:
        lines.append(
            "  kinds   "
            + " · ".join(
                f"{k.name}: {_ranges(k.cpus)}" + (f" ({k.max_mhz:.0f} MHz)" if k.max_mhz else "")
                for k in c.kinds
            )
        )
    mods = ", ".join(
        f"{x.size_bytes and _gib(x.size_bytes)} {x.type or '?'}"
        + (f"-{x.speed_mts}" if x.speed_mts else "")
        for x in m.modules
    )
    lines.append(
        f"  memory  {_gib(m.total_bytes)} total, {_gib(m.available_bytes)} available"
        + (f" · {mods} (from {m.source})" if mods else "")
    )
    for node in f.numa.nodes:
        extra = " memory-only" if node.memory_only else ""
        tier = f" tier {node.tier}" if node.tier is not None else ""
        lines.append(
            f"  node{node.id:<3} cpus {_ranges(node.cpus)} · {_gib(node.memory_bytes)}{extra}{tier}"
        )
    for d in f.storage.devices:
        lines.append(f"  disk    {d.name} {d.class_} {_gib(d.size_bytes)} {d.model or ''}".rstrip())
    for key, place in f.storage.paths.items():
        free = f", {_gib(place.free_bytes)} free" if place.free_bytes is not None else ""
        lines.append(
            f"  {key:<7} {place.path} on {place.mount} ({place.fstype}, {place.class_}{free})"
        )
    if f.go:
        lines.append(f"  go      {f.go.get('GOVERSION', '?')} · GOROOT {f.go.get('GOROOT', '?')}")
    elif f.user.name:
        lines.append(f"  go      not found for {f.user.name}")
    for nic in f.nics:
        if not nic.virtual:
            speed = f"{nic.speed_mbps} Mb/s" if nic.speed_mbps else ("down" if not nic.up else "?")
            lines.append(f"  nic     {nic.name} {nic.driver or '?'} {speed}")
    for why in f.unknown:
        lines.append(f"  unknown {why}")
    return "\n".join(lines)
