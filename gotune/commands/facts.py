"""``gotune facts``: what each host has, in one command per host.

``gotune facts [INVENTORY] --json`` prints ``{"hosts": {NAME: facts}}`` (plus
``"unreachable": [NAME, ...]`` and ``"errors": {NAME: why}`` when some host could
not be reached), gathered for the same developer users apply would gather them
for (``gotune_users``), so the document fed to ``gotune plan --facts`` gives the
plan apply would carry out;
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
    hosts, unreachable = facts_from_inventory(args.inventory, args.user)
    if args.json:
        out: dict[str, Any] = {"hosts": {name: f.to_dict() for name, f in hosts.items()}}
        if unreachable:
            out["unreachable"] = list(unreachable)
            out["errors"] = unreachable
        print(json.dumps(out, indent=1))
    else:
        print("\n\n".join(summary(name, f) for name, f in hosts.items()))
        for name, why in unreachable.items():
            print(f"{name}: unreachable: {why}")
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
    return parse_output(collect_local(str(root.resolve()), timeout=COLLECT_TIMEOUT_S))


def facts_from_inventory(
    spec: str | None, user: str | None = None
) -> tuple[dict[str, Facts], dict[str, str]]:
    """Facts of every host of an inventory, fetched in parallel; and why others have none."""
    from gotune.facts.gather import gather
    from gotune.inventory import connect, describe_error, validated

    inventory, settings = validated(spec, user)
    with connect(inventory) as conn:
        results, errors = conn.each(lambda h: gather(settings[h.name]), COLLECT_TIMEOUT_S + 30)
        failed = {name: describe_error(exc) for name, exc in errors.items()}
        failed.update(conn.unreachable)
    return results, failed


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
    for user, uf in f.users.items():
        for key, place in uf.paths.items():
            free = f", {_gib(place.free_bytes)} free" if place.free_bytes is not None else ""
            lines.append(
                f"  {key:<7} {user}: {place.path} on {place.mount} "
                f"({place.fstype}, {place.class_}{free})"
            )
        if uf.go:
            version, goroot = uf.go.get("GOVERSION", "?"), uf.go.get("GOROOT", "?")
            lines.append(f"  go      {user}: {version} · GOROOT {goroot}")
        else:
            lines.append(f"  go      not found for {user}")
    if not f.users:
        lines.append("  users   none (set gotune_users for go env and cache placement)")
    if f.wsl is not None:
        w = f.wsl
        lines.append(
            f"  wsl     Windows {_gib(w.windows_memory_bytes)}, {w.windows_cpus or '?'} threads"
            f" · profile {w.windows_profile or '? (' + str(w.windows_error) + ')'}"
            f" · {len(w.windows_path_entries)} Windows PATH entries"
        )
    for nic in f.nics:
        if not nic.virtual:
            speed = f"{nic.speed_mbps} Mb/s" if nic.speed_mbps else ("down" if not nic.up else "?")
            lines.append(f"  nic     {nic.name} {nic.driver or '?'} {speed}")
    for why in f.unknown:
        lines.append(f"  unknown {why}")
    return "\n".join(lines)
