"""``gotune mirror serve|sync|status``: the local Go module proxy mirror."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gotune.agent.mirror.core import Config, Mirror
from gotune.agent.mirror.limits import parse_rate
from gotune.agent.mirror.upstream import Entry, parse_url_list
from gotune.agent.paths import WEAR_STATE
from gotune.agent.units import parse_size
from gotune.errors import GotuneError, UsageError


def _size(value: str | None, flag: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value, flag)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _rate(value: str | None, flag: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_rate(value, flag)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _upstreams(text: str) -> list[Entry]:
    try:
        return parse_url_list(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _config(args: argparse.Namespace, offline: bool = False) -> Config:
    entries = _upstreams(args.upstream)
    if not entries and not offline:
        raise UsageError(
            f"--upstream {args.upstream!r} names no proxy URL (the mirror cannot fetch 'direct')"
        )
    timeout = _rate(getattr(args, "timeout", None), "--timeout")
    wear = getattr(args, "wear_state", None)
    return Config(
        cache_dir=Path(args.cache_dir),
        upstreams=entries,
        limit_rate=_size(args.limit_rate, "--limit-rate"),
        limit_requests=_rate(args.limit_requests, "--limit-requests"),
        max_cache_size=_size(getattr(args, "max_cache_size", None), "--max-cache-size"),
        offline=offline,
        list_ttl=float(getattr(args, "list_ttl", None) or 60.0),
        timeout=timeout or 30.0,
        wear_state=Path(wear or WEAR_STATE),
        client_limit_rate=_size(getattr(args, "client_limit_rate", None), "--client-limit-rate"),
        prefetch=not getattr(args, "no_prefetch", True),
    )


def _mirror(config: Config) -> Mirror:
    try:
        return Mirror(config)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise GotuneError(f"cannot use cache dir {config.cache_dir}: {reason}") from None


def _serve(args: argparse.Namespace) -> int:
    from gotune.agent.httpserver import parse_allow, parse_listen
    from gotune.agent.mirror.server import MirrorServer, run_forever

    try:
        listen = parse_listen(args.listen)
        allow = parse_allow(args.allow)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    config = _config(args, offline=args.offline)
    mirror = _mirror(config)
    try:
        server = MirrorServer(listen, mirror, allow)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise GotuneError(f"cannot listen on {args.listen}: {reason}") from None
    host, port = str(server.server_address[0]), int(server.server_address[1])
    url = f"http://{host}:{port}" if ":" not in str(host) else f"http://[{host}]:{port}"
    started = {
        "url": url,
        "cache_dir": str(mirror.store.root),
        "upstreams": [e.url for e in config.upstreams],
        "offline": config.offline,
        "removed_temp_files": mirror.store.removed_tmp,
        "cache_bytes": mirror.store.total_bytes,
    }
    if args.json:
        print(json.dumps(started), flush=True)
    else:
        print(f"gotune mirror: serving {started['cache_dir']} on {url}", flush=True)
    run_forever(server)
    return 0


def _sync(args: argparse.Namespace) -> int:
    from gotune.agent.mirror.sync import Progress, SourceError, read_sources, sync

    try:
        wanted = read_sources(Path(p) for p in args.sources)
    except SourceError as exc:
        raise GotuneError(str(exc)) from None
    mirror = _mirror(_config(args))
    progress = Progress(len(wanted)) if not args.json else None
    summary = sync(mirror, wanted, jobs=args.jobs, progress=progress)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{summary['modules']} module versions: {summary['fetched']} fetched, "
            f"{summary['skipped']} already cached, {summary['failed']} failed "
            f"({summary['fetched_bytes']} bytes in {summary['seconds']} s)"
        )
        for f in summary["failures"]:
            print(f"  failed {f['module']}@{f['version']}: {f['error']}", file=sys.stderr)
    return 1 if summary["failed"] else 0


def _status(args: argparse.Namespace) -> int:
    from gotune.agent.mirror.status import Unreachable, format_status, read_status

    try:
        status = read_status(args.url)
    except Unreachable as exc:
        raise GotuneError(f"mirror not reachable: {exc}") from None
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        print(format_status(status))
    return 0


def run(args: argparse.Namespace) -> int:
    action = {"serve": _serve, "sync": _sync, "status": _status}[args.mirror_command]
    return action(args)
