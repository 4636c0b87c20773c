"""``gotune plan [INVENTORY] [--facts FILE] [--json]``: what gotune would change, and why.

With ``--facts FILE`` the plan is made from a saved facts document (what
``gotune facts --json`` prints, or a single host's facts) and nothing is
contacted. Otherwise each host of the inventory is connected to, its facts
gathered, and the plan printed; nothing is changed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gotune.errors import GotuneError
from gotune.facts.model import Facts
from gotune.plan import Plan, make_plan
from gotune.settings import validate_host_data


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


def plans_from_file(path: str, inventory_data: dict[str, Any] | None = None) -> dict[str, Plan]:
    plans = {}
    for name, facts in load_facts_file(path).items():
        # Settings from the inventory when given, else defaults; the facts name the user.
        settings = validate_host_data(inventory_data or {}, name)
        users = {facts.user.name: facts} if facts.user.name else {}
        plans[name] = make_plan(facts, settings, users)
    return plans


def plans_live(spec: str | None) -> dict[str, Plan]:
    from pyinfra.api.exceptions import PyinfraError

    from gotune.deploys.tune import RUNS, plan_current_host
    from gotune.inventory import connected, load_inventory
    from gotune.settings import validate_inventory

    validate_inventory(load_inventory(spec))
    with connected(spec) as state:
        from pyinfra_cli.util import load_func

        try:
            load_func(state, plan_current_host)
        except GotuneError:
            raise
        except PyinfraError as exc:
            raise GotuneError(f"cannot gather facts: {exc}") from exc
        return {h.name: RUNS[h.name].plan for h in state.activated_hosts if h.name in RUNS}


def render_text(plans: dict[str, Plan]) -> str:
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
    if args.facts:
        data = None
        if args.inventory:
            from gotune.inventory import load_inventory

            first = next(iter(load_inventory(args.inventory)))
            data = first.data.dict()
        plans = plans_from_file(args.facts, data)
    else:
        plans = plans_live(args.inventory)
    if args.json:
        print(json.dumps({"hosts": {n: p.to_dict() for n, p in plans.items()}}, indent=2))
    else:
        print(render_text(plans))
    return 0
