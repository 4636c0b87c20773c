"""Shared pytest fixtures."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import pytest

from tests import sandbox_storage, sandbox_wsl
from tests.recorded import RecordedTrees
from tests.sandbox import Sandbox, missing_requirement, missing_systemd_requirement
from tests.sandbox_storage import StorageArg
from tests.sandbox_wsl import Wsl2


@pytest.fixture(autouse=True)
def no_gevent_patching_in_the_test_process() -> Iterator[None]:
    """Importing pyinfra's CLI package gevent-patches the whole process (threads,
    sockets, locks). Halfway through a session that breaks threaded tests (the
    mirror) and Python's import locks, so tests run gotune's pyinfra paths in a
    child process; this fails the test that forgets."""
    already = "pyinfra_cli" in sys.modules
    yield
    if not already and "pyinfra_cli" in sys.modules:
        pytest.fail("pyinfra_cli was imported in the pytest process; run it in a subprocess")


@pytest.fixture(scope="session")
def recorded_trees() -> Iterator[RecordedTrees]:
    """The recorded machines of tests/fixtures/hwloc, unpacked and parsed once a session."""
    trees = RecordedTrees()
    yield trees
    trees.close()


class SandboxFactory(Protocol):
    def __call__(
        self,
        count: int = 1,
        profiles: Sequence[str | None] | None = None,
        data: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        systemd: bool | Sequence[bool] = False,
        storage: StorageArg = None,
        wsl: Wsl2 | Sequence[Wsl2 | None] | None = None,
    ) -> Sandbox: ...


@pytest.fixture
def sandbox() -> Iterator[SandboxFactory]:
    """Start sandbox hosts: ``sandbox(count=1, profiles=None, data=None, systemd=False,
    storage=None, wsl=None) -> Sandbox``.

    Every Sandbox made is torn down when the test ends, passed or failed. Skips the
    test when this machine cannot run them (not root, no sshd, no overlayfs; for
    systemd hosts no nspawn or no rootfs that can be built; for slow storage no
    FUSE, blkio or loop devices).
    """
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    started: list[Sandbox] = []

    def start(
        count: int = 1,
        profiles: Sequence[str | None] | None = None,
        data: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        systemd: bool | Sequence[bool] = False,
        storage: StorageArg = None,
        wsl: Wsl2 | Sequence[Wsl2 | None] | None = None,
    ) -> Sandbox:
        flags = [systemd] * count if isinstance(systemd, bool) else list(systemd)
        why = missing_systemd_requirement() if any(flags) else None
        per_host = sandbox_storage.per_host(storage, count)
        wsls = [wsl] * count if wsl is None or isinstance(wsl, Wsl2) else list(wsl)
        specs = [s for spec, host in zip(wsls, per_host, strict=False)
                 for s in (sandbox_wsl.storage_for(spec, host) if spec else host)]
        why = why or (sandbox_storage.missing_requirement(specs) if specs else None)
        if why:
            pytest.skip(why)
        box = Sandbox(count, profiles=profiles, data=data, systemd=systemd, storage=storage,
                      wsl=wsl)
        started.append(box)
        box.start()
        return box

    yield start
    errors = []
    for box in reversed(started):
        try:
            box.close()
        except RuntimeError as exc:
            errors.append(str(exc))
    if errors:
        pytest.fail("; ".join(errors))
