"""gotune's team build cache: the site tier Go's GOCACHEPROG helpers ask (standard library only).

- ``store``: outputs by SHA-256, action entries, crash-safe writes, checks, LRU eviction
- ``token``: the write token: made on the control machine, kept as a digest on the site
- ``metrics``: its counters and gauges (``gotune_buildcache_*``)
- ``cache``: who may read and write what (allowlist, token, wear budget, size cap)
- ``server``: the HTTP routes on the shared server core (``gotune.agent.httpserver``)
- ``cli``: ``gotune buildcache serve|status``; ``measure``: the A/B apply runs on a host

The helper itself (``templates/buildcache-cacheprog.go.j2``) is Go, built on each
developer host by its own toolchain: Go starts it for every go command.
"""
