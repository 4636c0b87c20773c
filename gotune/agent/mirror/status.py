"""``gotune mirror status``: read /healthz and /metrics of a running mirror."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from gotune.agent.mirror.metrics import PREFIX
from gotune.agent.prom import parse_samples

# A mirror on loopback answers in milliseconds; 5 s covers a busy LAN one.
STATUS_TIMEOUT = 5.0


class Unreachable(Exception):
    """The mirror did not answer (message says why)."""


def fetch(url: str) -> bytes:
    """The body of a GET on ``url``; Unreachable (saying why) when it fails."""
    try:
        with urllib.request.urlopen(url, timeout=STATUS_TIMEOUT) as resp:  # noqa: S310 - http(s) only
            data: bytes = resp.read()
            return data
    except urllib.error.HTTPError as exc:
        raise Unreachable(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"{url}: {reason}") from None


def read_status(base: str) -> dict[str, Any]:
    """{'url', 'health': healthz JSON, 'metrics': {name{labels}: value}, 'summary'}."""
    base = base.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise Unreachable(f"{base}: the mirror URL must start with http:// or https://")
    try:
        health = json.loads(fetch(base + "/healthz"))
    except ValueError:
        raise Unreachable(f"{base}/healthz did not answer JSON") from None
    metrics = parse_samples(fetch(base + "/metrics").decode("utf-8", "replace"))

    def total(name: str) -> float:
        full = PREFIX + name
        return sum(v for k, v in metrics.items() if k == full or k.startswith(full + "{"))

    summary = {
        "requests": int(total("requests_total")),
        "hits": int(total("cache_hits_total")),
        "misses": int(total("cache_misses_total")),
        "served_bytes": int(total("served_bytes_total")),
        "fetched_bytes": int(total("upstream_fetched_bytes_total")),
        "upstream_errors": int(total("upstream_errors_total")),
        "rate_limit_wait_seconds": round(total("rate_limit_wait_seconds_total"), 3),
        "cache_bytes": int(total("cache_bytes")),
    }
    return {"url": base, "health": health, "summary": summary, "metrics": metrics}


def format_status(status: dict[str, Any]) -> str:
    h, s = status["health"], status["summary"]
    caching = "caching" if h.get("caching") else "not caching"
    limit = h.get("max_cache_bytes")
    lines = [
        f"mirror {status['url']}: {h.get('status')}, {caching} ({h.get('caching_reason')})",
        f"  cache     {h.get('cache_dir')}: {s['cache_bytes']} bytes"
        + (f" of {limit}" if limit else "") + f", {h.get('cached_versions')} versions",
        f"  upstream  {', '.join(h.get('upstreams') or []) or '(none: offline)'}",
        f"  requests  {s['requests']} ({s['hits']} hits, {s['misses']} misses), "
        f"{s['upstream_errors']} upstream errors",
        f"  bytes     {s['served_bytes']} served, {s['fetched_bytes']} fetched, "
        f"{s['rate_limit_wait_seconds']} s waiting on rate limits",
    ]
    return "\n".join(lines)
