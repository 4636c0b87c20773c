"""The ``gotune`` command line: one place that declares every command and flag.

The flags here are a contract (DESIGN.md, the issues): scripts rely on them.
Each command's work lives in ``gotune/commands/<name>.py`` as ``run(args) -> int``;
a command listed in ``NOT_YET`` answers "not available yet" and exits 3.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from gotune import __version__
from gotune.errors import GotuneError, NotAvailable

# Commands whose issue has not landed: they refuse honestly instead of faking.
NOT_YET: dict[str, str] = {
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one ``gotune: ...`` line and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"gotune: {message} (see '{self.prog} --help')\n")


def _inventory_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inventory",
        nargs="?",
        metavar="INVENTORY",
        help="pyinfra inventory file, '@local' or 'host1,host2' (default: inventories/local.py)",
    )


def _json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON (the stable interface)")


def _mirror_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", metavar="SECONDS", help="upstream timeout (default 30)")
    p.add_argument("--wear-state", metavar="FILE",
                   help="wear state file (default /var/lib/gotune/wear/state.json)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gotune",
        description="Provision and tune Go development machines (pyinfra-based).",
    )
    parser.add_argument("--version", action="version", version=f"gotune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("facts", help="detect each host's hardware, platform and Go setup")
    _inventory_arg(p)
    p.add_argument("--sysroot", metavar="DIR", help="read a recorded /sys+/proc tree instead")
    _json_arg(p)

    p = sub.add_parser("plan", help="show what gotune would change, and why")
    _inventory_arg(p)
    p.add_argument("--facts", metavar="FILE", help="plan from a saved facts document")
    _json_arg(p)

    p = sub.add_parser("apply", help="make the hosts match the plan")
    _inventory_arg(p)
    p.add_argument("--dry", action="store_true", help="show the changes, make none")
    p.add_argument("--yes", action="store_true", help="do not ask before changing anything")
    p.add_argument("--no-verify", action="store_true", help="skip the verify step at the end")
    _json_arg(p)

    p = sub.add_parser("verify", help="rerun the benchmarks tuned vs default and check the state")
    _inventory_arg(p)
    p.add_argument("--report", metavar="DIR", help="write a self-contained HTML report to DIR")
    p.add_argument("--thorough", action="store_true", help="also run the slow cold-build benchmark")
    p.add_argument("--runs", type=int, metavar="N", help="runs per variant (default per benchmark)")
    p.add_argument("--bench", metavar="LIST", help="comma-separated benchmark names, or 'none'")
    _json_arg(p)

    p = sub.add_parser("undo", help="restore what gotune changed")
    _inventory_arg(p)
    p.add_argument("--yes", action="store_true", help="do not ask before changing anything")
    _json_arg(p)

    p = sub.add_parser("mirror", help="the local Go module proxy mirror")
    msub = p.add_subparsers(dest="mirror_command", metavar="ACTION", parser_class=_Parser)
    msub.required = True
    m = msub.add_parser("serve", help="serve a GOPROXY from a local cache")
    m.add_argument("--listen", default="127.0.0.1:3000", metavar="ADDR:PORT")
    m.add_argument("--cache-dir", required=True, metavar="DIR")
    m.add_argument("--upstream", default="https://proxy.golang.org,direct", metavar="URL_LIST")
    m.add_argument("--limit-rate", metavar="BYTES", help="upstream bytes/s (512K, 8M)")
    m.add_argument("--limit-requests", metavar="N", help="upstream requests per second")
    m.add_argument("--max-cache-size", metavar="BYTES", help="evict least recently used above")
    m.add_argument("--offline", action="store_true", help="serve only what is cached")
    _mirror_common_args(m)
    m.add_argument("--list-ttl", type=float, metavar="SECONDS",
                   help="revalidate list/@latest after this long (default 60)")
    m.add_argument("--client-limit-rate", metavar="BYTES", help="bytes/s served per client")
    m.add_argument("--allow", metavar="CIDR[,CIDR]", help="only these client addresses")
    m.add_argument("--no-prefetch", action="store_true",
                   help="do not fetch a version's .zip ahead when its .info is asked for")
    _json_arg(m)
    m = msub.add_parser("sync", help="prefetch modules from go.sum/go.mod/module lists")
    m.add_argument("--cache-dir", required=True, metavar="DIR")
    m.add_argument("--upstream", default="https://proxy.golang.org", metavar="URL_LIST")
    m.add_argument("--from", dest="sources", nargs="+", required=True, metavar="FILE")
    m.add_argument("--limit-rate", metavar="BYTES")
    m.add_argument("--limit-requests", metavar="N")
    _mirror_common_args(m)
    m.add_argument("--jobs", type=int, default=4, metavar="N", help="parallel fetches")
    _json_arg(m)
    m = msub.add_parser("status", help="what a running mirror reports")
    m.add_argument("--url", default="http://127.0.0.1:3000", help="the mirror's base URL")
    _json_arg(m)

    p = sub.add_parser("wear", help="SSD wear from SMART, with projections")
    p.add_argument("--smartctl-json", nargs="+", metavar="FILE", help="read recorded output")
    p.add_argument("--sysroot", metavar="DIR", help="read /sys below DIR (eMMC, drive list)")
    p.add_argument("--record", action="store_true",
                   help="the periodic check: append to the history, write state and metrics")
    p.add_argument("--state-dir", metavar="DIR",
                   help="history and state file (default /var/lib/gotune/wear)")
    p.add_argument("--textfile-dir", metavar="DIR",
                   help="node_exporter textfile collector dir for gotune_wear.prom")
    p.add_argument("--warn-percent", type=int, metavar="N", help="warn at N%% used (default 80)")
    p.add_argument("--critical-percent", type=int, metavar="N",
                   help="critical at N%% used (default 90)")
    p.add_argument("--media-errors-critical", type=int, metavar="N",
                   help="critical at N media errors (default 1; 0: never)")
    p.add_argument("--write-budget", metavar="BYTES",
                   help="mirror's daily write budget at warn (default 1G)")
    _json_arg(p)
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command in NOT_YET:
        if hasattr(args, "inventory"):
            # Imported here: `mirror` and `wear` run on targets without pyinfra.
            from gotune.inventory import load_inventory

            load_inventory(args.inventory)  # a bad inventory is reported as such first
        raise NotAvailable(f"{args.command}: not available yet — {NOT_YET[args.command]}")
    module = importlib.import_module(f"gotune.commands.{args.command}")
    result: int = module.run(args)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except GotuneError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": str(exc)}))
        print(f"gotune: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("gotune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
