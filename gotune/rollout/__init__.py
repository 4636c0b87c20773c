"""Fleet rollout: the components driven over a fleet in waves, gated on measured verify.

``gotune rollout INVENTORY`` (``gotune/commands/rollout.py``) applies the setup to a
canary, then to growing waves, verifying each wave's hosts (tuned against default,
measured on every host) before the next wave starts; a fleet-wide failure budget halts
the rest, and a state file makes it resumable.

Modules, in the order the data flows:

- ``waves``     — ``--waves`` and ``--max-fail`` parsed; the hosts of each wave
- ``state``     — the state file (atomic writes after each host, the inventory's identity)
- ``inventory`` — a wave's part of the inventory, the re-run inventory file
- ``run``       — the loop: apply (apply's machinery), verify in parallel, gate, undo, halt
- ``gate``      — does a host pass, from its apply and verify results
- ``hardware``  — a host's hardware class (CPU model, storage class, RAM)
- ``result``    — the ``--json`` document, the wave lines and the summary table
- ``charts``, ``report`` — the self-contained HTML fleet report
"""
