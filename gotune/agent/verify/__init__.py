"""The verify runner, executed on the target (``gotune verify-runner``; standard library only).

- ``runner``   — the entry: one request in, one ``GOTUNE-VERIFY`` JSON line out
- ``shells``   — the developer user: login environment, go env, acting as them
- ``places``   — where each cache lives: owner, writability, filesystem, disk
- ``services`` — gotune's mirror, wear check and NUMA wrappers as verify finds them
- ``bench``    — the A/B benchmarks, tuned against Go's defaults, interleaved
- ``history``  — results kept on the host for the trend
- ``process``  — running commands, bounded error text, the error that stops a run
"""
