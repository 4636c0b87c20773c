"""Everything gotune runs on a target host: standard library only.

This package (with ``gotune/__init__.py`` and ``gotune/errors.py``) is what the
agent zipapp holds (``/opt/gotune/gotune.pyz``, built by ``gotune.zipapp``), the
one way gotune's code reaches a host; a host needs nothing but ``python3``.

- commands (``cli``): ``mirror``, ``wear``, and the internal ``numa-measure``
  and ``verify-runner`` the control machine starts (``launch`` builds that shell)
- ``mirror``, ``wear``, ``numa_measure``, ``verify``: what those commands do
- shared helpers, one of each: ``paths`` (every absolute path both sides use),
  ``mounts`` (mount tables and the filesystem classification facts use too),
  ``fsutil`` (the atomic writer), ``units`` (sizes), ``prom`` (Prometheus text),
  ``stats`` (the A/B verdict rule)

``tests/test_agent.py`` fails if any module here imports a package outside the
standard library or a gotune module outside ``gotune.agent`` and ``gotune.errors``.
"""
