"""The ``gotune`` command line: one place that declares every command and flag.

The flags here are a contract (DESIGN.md, the issues): scripts rely on them.
Each command's work lives in ``gotune/commands/<name>.py`` as ``run(args) -> int``;
``mirror`` and ``wear`` run on targets too and are declared by the agent
(``gotune.agent.cli``), which this parser includes.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from gotune import __version__
from gotune.agent import cli as agent_cli
from gotune.agent.cli import Parser, json_arg


def _inventory_arg(p: argparse.ArgumentParser, user: bool = True) -> None:
    """INVENTORY, and --user unless the command works on whole hosts (undo)."""
    p.add_argument(
        "inventory",
        nargs="?",
        metavar="INVENTORY",
        help="pyinfra inventory file, an Ansible inventory (.ini, .yml), '@local' or "
        "'host1,host2' (default: inventories/local.py in a checkout, else @local)",
    )
    if user:
        _user_arg(p)


def _user_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--user", metavar="NAME",
        help="the developer user on hosts whose data sets no gotune_users "
        "(default: @local's invoking user; nobody over SSH)",
    )  # fmt: skip


def _bench_args(p: argparse.ArgumentParser) -> None:
    """verify's benchmarks and workloads, which rollout passes through."""
    p.add_argument("--runs", type=int, metavar="N", help="runs per variant (default per benchmark)")
    p.add_argument("--bench", metavar="LIST", help="comma-separated benchmark names, or 'none'")
    p.add_argument("--project", action="append", default=[], metavar="DIR",
                   help="also build this Go module as the developer would (repeatable; "
                        "added to the gotune_projects setting)")
    p.add_argument("--cold", action="store_true",
                   help="drop the page cache before every timed run (root on the host; "
                        "slower): the morning after a reboot")
    p.add_argument("--workload-packages", type=int, metavar="N",
                   help="packages in the generated service (default 200; fewer is quicker)")


def _rollout_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("inventory", metavar="INVENTORY",
                   help="pyinfra inventory file, or an Ansible inventory (.ini, .yml)")
    _user_arg(p)
    flags = {
        "--waves": ("LIST", "hosts per wave, numbers or percentages of the fleet; the last "
                            "repeats (default 1,10%%,100%%)"),
        "--max-fail": ("N|P%", "failed hosts tolerated over all waves before halting "
                               "(default 0)"),
        "--state": ("FILE", "the state file (default: beside the inventory, NAME.rollout.json)"),
        "--report": ("DIR", "write the HTML fleet report to DIR"),
    }
    for flag, (metavar, text) in flags.items():
        p.add_argument(flag, metavar=metavar, help=text)
    p.add_argument("--gate", choices=("fail", "slower"),
                   help="a host fails on failed checks (fail), or also on a slower "
                        "benchmark (slower, the default)")
    p.add_argument("--parallel", type=int, metavar="N",
                   help="hosts worked on at once within a wave (default: pyinfra's)")
    _bench_args(p)
    switches = {
        "--resume": "continue the rollout in the state file, skipping hosts that passed",
        "--keep-failed": "leave hosts that failed as they are (default: undo them)",
        "--dry": "show the waves, touch nothing",
        "--yes": "do not ask before changing anything",
    }
    for flag, text in switches.items():
        p.add_argument(flag, action="store_true", help=text)
    json_arg(p)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gotune",
        description="Provision and tune Go development machines (pyinfra-based).",
    )
    parser.add_argument("--version", action="version", version=f"gotune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    p = sub.add_parser("facts", help="detect each host's hardware, platform and Go setup")
    _inventory_arg(p)
    p.add_argument("--sysroot", metavar="DIR", help="read a recorded /sys+/proc tree instead")
    json_arg(p)

    p = sub.add_parser("plan", help="show what gotune would change, and why")
    _inventory_arg(p)
    p.add_argument("--facts", metavar="FILE", help="plan from a saved facts document")
    json_arg(p)

    p = sub.add_parser("apply", help="make the hosts match the plan")
    _inventory_arg(p)
    p.add_argument("--dry", action="store_true", help="show the changes, make none")
    p.add_argument("--yes", action="store_true", help="do not ask before changing anything")
    p.add_argument("--no-verify", action="store_true", help="skip the verify step at the end")
    json_arg(p)

    p = sub.add_parser("verify", help="rerun the benchmarks tuned vs default and check the state")
    _inventory_arg(p)
    p.add_argument("--report", metavar="DIR", help="write a self-contained HTML report to DIR")
    p.add_argument("--thorough", action="store_true", help="also run the slow cold-build benchmark")
    _bench_args(p)
    json_arg(p)

    # Undo replays each host's records, every user's alike: no --user to narrow it.
    p = sub.add_parser("undo", help="restore what gotune changed")
    _inventory_arg(p, user=False)
    p.add_argument("--yes", action="store_true", help="do not ask before changing anything")
    json_arg(p)

    _rollout_parser(sub.add_parser(
        "rollout", help="roll the setup out to a fleet in waves, gated on verify"))

    agent_cli.add_commands(sub)
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command in agent_cli.COMMANDS:
        return agent_cli.run(args)
    module = importlib.import_module(f"gotune.commands.{args.command}")
    result: int = module.run(args)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return agent_cli.parse_and_run(_run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
