"""The toolchain component: the Go the developer's shells and IDEs run.

Save → apply → verify → undo, side by side:

- plan: ``gotune/plan/toolchain.py`` (install ``gotune_go_version``, or leave Go alone)
- apply: here, with ``operations/toolchain.py`` — a checked tarball unpacked into
  ``/usr/local/go-<version>`` behind the ``/usr/local/go`` symlink (switched with one
  rename), links in ``/usr/local/bin`` and ``/etc/profile.d/gotune.sh``
  (``templates/toolchain-profile.sh.j2``); or the distribution's package
- verify: ``gotune/verify/checks/toolchain.py`` (the version go reports is the planned one)
- undo: the old ``/usr/local/go`` (a directory or a link) and every file is recorded
  first; the new root is recorded as created; a package gotune installed is removed
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from gotune.operations import toolchain
from gotune.plan.model import DistroToolchain, HostPlan, TarballToolchain


@deploy("gotune toolchain")
def deploy_toolchain(hp: HostPlan) -> None:
    """Install the planned Go toolchain (nothing when the plan leaves it alone)."""
    d = hp.plan.toolchain
    if isinstance(d, TarballToolchain):
        toolchain.go_tarball(
            name=f"Go {d.version} toolchain", version=d.version, tarball=d.tarball,
            sha256=d.sha256,
        )  # fmt: skip
    elif isinstance(d, DistroToolchain):
        toolchain.go_distro(name="Go toolchain from the distribution",
                            distro=hp.facts.platform.distro_ids())  # fmt: skip
    else:
        host.noop(d.reason)
