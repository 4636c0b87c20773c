"""``gotune buildcache serve|status``: the team build cache's site tier."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gotune.agent.paths import WEAR_STATE
from gotune.agent.units import format_bytes, parse_size
from gotune.errors import GotuneError, UsageError


def _serve(args: argparse.Namespace) -> int:
    from gotune.agent.buildcache.cache import BuildCache, Config
    from gotune.agent.buildcache.server import BuildcacheServer, run_forever
    from gotune.agent.httpserver import parse_allow, parse_listen

    try:
        listen = parse_listen(args.listen)
        allow = parse_allow(args.allow)
        cap = parse_size(args.max_cache_size, "--max-cache-size") if args.max_cache_size else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    config = Config(
        cache_dir=Path(args.cache_dir), max_cache_size=cap,
        token_digest_file=Path(args.token_digest_file) if args.token_digest_file else None,
        wear_state=Path(args.wear_state or WEAR_STATE),
    )  # fmt: skip
    try:
        cache = BuildCache(config)
    except OSError as exc:
        raise GotuneError(f"cannot use cache dir {config.cache_dir}: {exc.strerror or exc}") \
            from None
    try:
        server = BuildcacheServer(listen, cache, allow)
    except OSError as exc:
        raise GotuneError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
    host, port = str(server.server_address[0]), int(server.server_address[1])
    url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    started = {"url": url, "cache_dir": str(cache.store.root), "writable": cache.tokens.writable,
               "removed_temp_files": cache.store.removed_tmp,
               "cache_bytes": cache.store.total_bytes}
    if args.json:
        print(json.dumps(started), flush=True)
    else:
        print(f"gotune buildcache: serving {started['cache_dir']} on {url} "
              f"({'builders may write' if started['writable'] else 'read only'})", flush=True)
    run_forever(server)
    return 0


def _status(args: argparse.Namespace) -> int:
    from gotune.agent.mirror.status import Unreachable, fetch

    url = args.url.rstrip("/")
    try:
        health = json.loads(fetch(url + "/healthz"))
    except Unreachable as exc:
        raise GotuneError(f"build cache not reachable: {exc}") from None
    except ValueError:
        raise GotuneError(f"{url}/healthz did not answer JSON") from None
    if args.json:
        print(json.dumps(health, indent=2, sort_keys=True))
        return 0
    rate = health.get("hit_rate")
    print(f"{url}: {health.get('objects')} outputs, {format_bytes(health.get('cache_bytes'))} "
          f"of {format_bytes(health.get('max_cache_bytes'))}; "
          f"{'builders may write' if health.get('writable') else 'read only'}")
    print(f"  gets      {health.get('hits')} hits, {health.get('misses')} misses"
          + (f" ({rate * 100:.1f}% hits)" if rate is not None else ""))
    print(f"  refused   {health.get('tampered')} tampered objects")
    print(f"  caching   {health.get('caching_reason')}")
    return 0


def run(args: argparse.Namespace) -> int:
    action = {"serve": _serve, "status": _status}[args.buildcache_command]
    return action(args)
