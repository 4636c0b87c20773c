"""``gotune plan [INVENTORY] [--facts FILE] [--json]``: what gotune would change, and why.

With ``--facts FILE`` the plan is made from a saved facts document (what
``gotune facts --json`` prints, or a single host's facts) and nothing is
contacted; the settings are the inventory's host data when an INVENTORY is
given, else the defaults. Otherwise each host of the inventory is connected to,
its facts gathered (one command) and its plan printed; nothing is changed.
Either way the plan is ``make_plan(facts, settings)``: the one apply carries out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gotune.errors import GotuneError
from gotune.facts.model import Facts
from gotune.plan import Plan, make_plan
from gotune.settings import validate_host_data, with_user


def load_facts_file(path: str) -> dict[str, Facts]:
    """Host name -> Facts from ``gotune facts --json`` output or one facts document."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise GotuneError(f"cannot read facts {path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise GotuneError(f"cannot read facts {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise GotuneError(f"facts {path} is not JSON: line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise GotuneError(f"facts {path}: expected a JSON object")
    docs = data["hosts"] if isinstance(data.get("hosts"), dict) else {None: data}
    out: dict[str, Facts] = {}
    for name, doc in docs.items():
        if isinstance(doc, dict) and isinstance(doc.get("facts"), dict):
            doc = doc["facts"]
        try:
            facts = Facts.from_dict(doc)
        except ValueError as exc:
            raise GotuneError(f"facts {path}: {exc}") from exc
        out[name or facts.platform.hostname or Path(path).stem] = facts
    return out


def plans_from_file(
    path: str, inventory: Any | None = None, user: str | None = None
) -> dict[str, Plan]:
    """Plans for the hosts of a facts file; settings from the inventory's host of the same
    name (when both hold one host, that host whatever its name: ``@local`` for facts
    recorded on this laptop), else the defaults. A host the facts name that the
    inventory does not hold is refused: whose settings to use would be a guess."""
    plans = {}
    hosts = {h.name: h for h in inventory} if inventory is not None else {}
    recorded = load_facts_file(path)
    only = next(iter(hosts.values())) if len(hosts) == 1 and len(recorded) == 1 else None
    for name, facts in recorded.items():
        host = hosts.get(name, only)
        if host is None and hosts:
            raise GotuneError(f"facts {path}: host {name} is not in the inventory (it holds "
                              f"{', '.join(sorted(hosts))}): whose settings to plan with?")
        settings = validate_host_data(with_user(host.data.dict() if host else {}, user), name)
        plans[name] = make_plan(facts, settings)
    return plans


def plans_live(spec: str | None, user: str | None) -> tuple[dict[str, Plan], dict[str, str]]:
    """(host name -> Plan, host name -> why it has none) for a live inventory."""
    from gotune.inventory import connect, validated
    from gotune.planning import host_plans

    inventory, settings = validated(spec, user)
    with connect(inventory) as conn:
        plans, failed = host_plans(conn, settings)
        failed.update(conn.unreachable)
    return {name: hp.plan for name, hp in plans.items()}, failed


def render_text(plans: dict[str, Plan]) -> str:
    """Each host's decisions with their reasons, then its warnings."""
    lines = []
    for name, plan in plans.items():
        lines.append(f"{name}:")
        for d in plan.decisions:
            who = f"{d.user}: " if d.user else ""
            mark = "change" if d.change else "keep  "
            value = d.value if d.value is not None else "(Go's default)"
            lines.append(f"  {mark} {who}{d.key} = {value} [{d.medium}]")
            lines.append(f"         {d.reason}")
        for w in plan.warnings:
            lines.append(f"  warning: {w}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    failed: dict[str, str] = {}
    if args.facts:
        inventory = None
        if args.inventory:
            from gotune.inventory import load_inventory

            inventory = load_inventory(args.inventory)
        plans = plans_from_file(args.facts, inventory, args.user)
    else:
        plans, failed = plans_live(args.inventory, args.user)
    if args.json:
        out: dict[str, Any] = {"hosts": {n: p.to_dict() for n, p in plans.items()}}
        if failed:  # as `gotune facts --json`: the names, and why each has no plan
            out["unreachable"] = list(failed)
            out["errors"] = failed
        print(json.dumps(out, indent=2))
    else:
        print(render_text(plans))
        for name, why in failed.items():
            print(f"{name}: no plan: {why}")
    return 1 if failed else 0
