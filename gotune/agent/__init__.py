"""Everything gotune runs on a target host: standard library only.

This package (with ``gotune/__init__.py``) is what the agent zipapp holds
(``/opt/gotune/gotune.pyz``, built by ``gotune.zipapp``): the module mirror, the
SSD wear check, NUMA wrapper measuring and the verify runner, and the helpers
they share. A host needs nothing but ``python3``. ``tests/test_layering.py``
fails if any module here imports a package outside the standard library or a
gotune module outside ``gotune.agent``.
"""
