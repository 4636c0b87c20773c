"""The agent's command line: what ``python3 /opt/gotune/gotune.pyz ...`` runs on a target.

``mirror``, ``wear`` and ``buildcache`` are user commands, declared here once; the
``gotune`` command (``gotune.cli``) adds the same parsers, so a flag means the same on
the control machine and in a unit file on a host. ``numa-measure``,
``buildcache-measure`` and ``verify-runner`` are internal: the control machine runs
them on a host (apply's measuring, ``gotune verify``), and only the agent's own parser
has them. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from gotune import __version__
from gotune.agent.paths import NUMA_RECORD, WEAR_STATE, WEAR_STATE_DIR
from gotune.errors import GotuneError, UsageError


class Parser(argparse.ArgumentParser):
    """argparse whose errors are UsageErrors: one ``gotune: ...`` line, exit 2, and the
    same as JSON when the command line asks for JSON (``parse_and_run``)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


# The user commands declared here (``gotune.cli`` hands them back to ``run``).
COMMANDS = ("mirror", "wear", "buildcache")


def json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON (the stable interface)")


def _mirror_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", metavar="SECONDS", help="upstream timeout (default 30)")
    p.add_argument("--wear-state", metavar="FILE",
                   help=f"wear state file (default {WEAR_STATE})")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``mirror`` and ``wear`` to a subparsers object (the agent's or gotune's)."""
    p = sub.add_parser("mirror", help="the local Go module proxy mirror")
    msub = p.add_subparsers(dest="mirror_command", metavar="ACTION", parser_class=Parser)
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
    json_arg(m)
    m = msub.add_parser("sync", help="prefetch modules from go.sum/go.mod/module lists")
    m.add_argument("--cache-dir", required=True, metavar="DIR")
    m.add_argument("--upstream", default="https://proxy.golang.org", metavar="URL_LIST")
    m.add_argument("--from", dest="sources", nargs="+", required=True, metavar="FILE")
    m.add_argument("--limit-rate", metavar="BYTES")
    m.add_argument("--limit-requests", metavar="N")
    _mirror_common_args(m)
    m.add_argument("--jobs", type=int, default=4, metavar="N", help="parallel fetches")
    json_arg(m)
    m = msub.add_parser("status", help="what a running mirror reports")
    m.add_argument("--url", default="http://127.0.0.1:3000", help="the mirror's base URL")
    json_arg(m)

    add_buildcache_commands(sub)

    p = sub.add_parser("wear", help="SSD wear from SMART, with projections")
    p.add_argument("--smartctl-json", nargs="+", metavar="FILE", help="read recorded output")
    p.add_argument("--sysroot", metavar="DIR", help="read /sys below DIR (eMMC, drive list)")
    p.add_argument("--record", action="store_true",
                   help="the periodic check: append to the history, write state and metrics")
    p.add_argument("--state-dir", metavar="DIR",
                   help=f"history and state file (default {WEAR_STATE_DIR})")
    p.add_argument("--textfile-dir", metavar="DIR",
                   help="node_exporter textfile collector dir for gotune_wear.prom")
    p.add_argument("--warn-percent", type=int, metavar="N", help="warn at N%% used (default 80)")
    p.add_argument("--critical-percent", type=int, metavar="N",
                   help="critical at N%% used (default 90)")
    p.add_argument("--media-errors-critical", type=int, metavar="N",
                   help="critical at N media errors (default 1; 0: never)")
    p.add_argument("--write-budget", metavar="BYTES",
                   help="mirror's daily write budget at warn (default 1G)")
    json_arg(p)


def add_buildcache_commands(sub: argparse._SubParsersAction) -> None:
    """``buildcache serve|status``: the team build cache's site tier."""
    p = sub.add_parser("buildcache", help="the team build cache (GOCACHEPROG's site tier)")
    bsub = p.add_subparsers(dest="buildcache_command", metavar="ACTION", parser_class=Parser)
    bsub.required = True
    b = bsub.add_parser("serve", help="serve Go build outputs to GOCACHEPROG helpers")
    b.add_argument("--listen", default="127.0.0.1:3001", metavar="ADDR:PORT")
    b.add_argument("--cache-dir", required=True, metavar="DIR")
    b.add_argument("--max-cache-size", metavar="BYTES", help="evict least recently used above")
    b.add_argument("--token-digest-file", metavar="FILE",
                   help="SHA-256 of the builders' write token (none: read only)")
    b.add_argument("--allow", metavar="CIDR[,CIDR]", help="only these client addresses")
    b.add_argument("--wear-state", metavar="FILE", help=f"wear state file (default {WEAR_STATE})")
    json_arg(b)
    b = bsub.add_parser("status", help="what a running build cache reports")
    b.add_argument("--url", default="http://127.0.0.1:3001", help="the build cache's base URL")
    json_arg(b)


def add_internal_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``numa-measure`` and ``verify-runner`` (the agent's parser only)."""
    p = sub.add_parser("numa-measure", help="(internal) time a NUMA wrapper against the plain "
                       "tool as a user; keep it only if it is faster")
    p.add_argument("--tool", required=True)
    p.add_argument("--wrapper", required=True, help="the wrapper script")
    p.add_argument("--real", required=True, help="the real binary the plain arm runs")
    p.add_argument("--user", required=True, help="run the workload as this user")
    p.add_argument("--numactl-args", default="",
                   help="the wrapper's policy, recorded with the figures")
    p.add_argument("--record", default=NUMA_RECORD, help="the JSON record to update")
    p.add_argument("--pairs", type=int, default=None, help="counted wrapped/plain pairs")
    p.add_argument("--cwd", help="working directory (default: the user's home)")
    p.add_argument("--remove-unhelpful", action="store_true",
                   help="delete a wrapper that does not beat the noise")
    p.add_argument("workload", nargs="+", help="the tool's arguments, after --")
    p = sub.add_parser("buildcache-measure", help="(internal) time a cold build with the team "
                       "build cache against without, and a warm build with the helper against "
                       "without; keep the helper only if it helps")
    from gotune.agent.buildcache.measure import add_arguments

    add_arguments(p)
    p = sub.add_parser("verify-runner", help="(internal) verify's benchmarks and observations "
                       "as the developer users; prints one GOTUNE-VERIFY JSON line")
    p.add_argument("request", nargs="?", default="{}", metavar="JSON",
                   help="the request: users, benchmarks, runs ... or mode=record")


def run(args: argparse.Namespace) -> int:
    """Run an agent command parsed by a parser that ``add_commands`` filled."""
    handler: Callable[[argparse.Namespace], int]
    if args.command == "mirror":
        from gotune.agent.mirror.cli import run as handler
    elif args.command == "buildcache":
        from gotune.agent.buildcache.cli import run as handler
    elif args.command == "wear":
        from gotune.agent.wear.cli import run as handler
    elif args.command == "numa-measure":
        from gotune.agent.numa_measure import run as handler
    elif args.command == "buildcache-measure":
        from gotune.agent.buildcache.measure import run as handler
    elif args.command == "verify-runner":
        from gotune.agent.verify.runner import run as handler
    else:
        raise GotuneError(f"not an agent command: {args.command}")
    return handler(args)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="gotune", description="gotune's agent on a target host.")
    parser.add_argument("--version", action="version", version=f"gotune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    add_commands(sub)
    add_internal_commands(sub)
    return parser


def guarded(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; a GotuneError is one line on stderr (and JSON with --json), no traceback."""
    try:
        return handler(args)
    except GotuneError as exc:
        return _report(exc, getattr(args, "json", False))
    except KeyboardInterrupt:
        print("gotune: interrupted", file=sys.stderr)
        return 130


def parse_and_run(handler: Callable[[argparse.Namespace], int],
                  parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` (default: the process's) and run ``handler`` under ``guarded``; a
    command line argparse refuses is reported as ``guarded`` reports errors."""
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(words)
    except UsageError as exc:
        return _report(exc, "--json" in words)
    return guarded(handler, args)


def _report(exc: GotuneError, as_json: bool) -> int:
    """One ``gotune: ...`` line on stderr (and ``{"error": ...}`` on stdout for JSON)."""
    if as_json:
        print(json.dumps({"error": str(exc)}))
    print(f"gotune: {exc}", file=sys.stderr)
    return exc.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    return parse_and_run(run, build_parser(), argv)
