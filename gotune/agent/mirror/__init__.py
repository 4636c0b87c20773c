"""gotune's local Go module proxy mirror (standard library only: it runs on targets).

- ``modpath``: module path and version rules, the ``!x`` case encoding, request paths
- ``limits``: size/rate parsing and token buckets
- ``upstream``: the GOPROXY URL list (``,`` and ``|``) and the pooled HTTP client
- ``store``: the on-disk GOPROXY tree: atomic writes, validation, local lists, LRU
- ``wearguard``: whether the mirror may write new artefacts (SSD wear state)
- ``metrics``: counters and the Prometheus text rendering
- ``core``: fetch-or-serve logic shared by the server and sync (singleflight)
- ``server``: the HTTP server; ``sync``: prefetch; ``status``: read a running mirror
"""
