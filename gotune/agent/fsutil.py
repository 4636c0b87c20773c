"""Files that are either wholly old or wholly new: the one atomic writer.

A temporary file beside the target (same filesystem, so the rename is atomic),
written and fsynced, given its mode, renamed over the target, and the directory
fsynced so the rename itself survives a crash. Readers (the mirror, node_exporter,
verify, a second check) never see half a file; a crash leaves at worst a
``TMP_PREFIX`` file, which the mirror deletes at start and no reader names.

Used by the mirror's cache, the wear state, history and metrics, verify's history,
the NUMA record and the zipapp build. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

# Temporary files start with a dot (hidden, never a Go module path element nor a
# ``*.prom`` file) and this prefix, so a cleanup can find a crash's leftovers.
TMP_PREFIX = ".tmp-"
# Files gotune writes are readable by everyone (the mirror's cache, state files).
FILE_MODE = 0o644
DIR_MODE = 0o755


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make the directory entries of ``path`` (a rename into it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_beside(path: str | os.PathLike[str]) -> tuple[int, Path]:
    """A new temporary file in ``path``'s directory (created): (open fd, its path)."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, mode=DIR_MODE, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=parent)
    return fd, Path(tmp)


def publish(tmp: str | os.PathLike[str], path: str | os.PathLike[str],
            mode: int = FILE_MODE) -> None:
    """Make a written temporary file ``path``: fsync it, set ``mode``, rename, fsync the dir."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def write_atomic(path: str | os.PathLike[str], data: bytes | str, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data`` (text is UTF-8) atomically; parents are created."""
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        publish(tmp, path, mode)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
