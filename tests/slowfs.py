"""A slow passthrough filesystem (FUSE): a directory remounted with a fixed latency
on every metadata operation, like WSL2's /mnt/c (9p to the Windows host).

Every lookup, stat, open, create, readdir, rename, unlink, mkdir ... waits
``--latency-ms`` before it is passed to the directory below; reads and writes of
file data are not delayed (9p moves data in large messages; its cost is the
round trips). As on 9p without a cache, the kernel keeps no attributes or
directory entries (``attr_timeout=0,entry_timeout=0``), so every stat reaches
this process. File data still goes through the page cache: no ``direct_io``,
which would break mmap (the Go compiler maps cached export data: "could not
import fmt (no such device)").

Files the kernel asks to create are opened read-write whatever the flags say:
the kernel may read through the handle it got from ``create`` (``go mod
download`` fails with "bad file descriptor" otherwise). New files and
directories belong to the caller, and the kernel checks permissions from the
attributes (``default_permissions``), so other users see a normal filesystem.

The mount shows as ``fuse.<subtype>``: this kernel has no 9p, so ``--subtype 9p``
gives ``fuse.9p`` with source ``C:\\``, as close to WSL2's ``9p`` as FUSE gets.

    python tests/slowfs.py SOURCE_DIR MOUNTPOINT --latency-ms 0.5

Runs in the foreground until killed (the sandbox stops it by PID) or unmounted.
"""

from __future__ import annotations

import argparse
import errno
import os
import time
from typing import Any

# Every field of a stat result the kernel wants back, as fusepy names them.
STAT_FIELDS = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size",
               "st_blocks", "st_rdev", "st_atime_ns", "st_mtime_ns", "st_ctime_ns")  # fmt: skip
STATVFS_FIELDS = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree",
                  "f_files", "f_flag", "f_frsize", "f_namemax")  # fmt: skip
# What WSL2 shows as the source of /mnt/c (libfuse unescapes the doubled backslash).
WSL_SOURCE = "C:\\\\"


class SlowPassthrough:
    """fusepy operations: the directory ``root``, each metadata operation ``latency`` slower."""

    use_ns = True  # fusepy: times as integer nanoseconds

    def __init__(self, root: str, latency: float) -> None:
        self.root = os.path.realpath(root)
        self.latency = latency

    def __call__(self, op: str, *args: Any) -> Any:
        handler = getattr(self, op, None)
        if handler is None:
            raise OSError(errno.ENOSYS, op)
        return handler(*args)

    # --- helpers ---------------------------------------------------------------------------

    def _full(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def _wait(self) -> None:
        """The round trip every metadata operation pays."""
        if self.latency > 0:
            time.sleep(self.latency)

    def _own(self, full: str) -> None:
        """Give a new file or directory to the user who made it (this daemon runs as root)."""
        from fuse import fuse_get_context

        uid, gid, _pid = fuse_get_context()
        os.lchown(full, uid, gid)

    # --- metadata: delayed -------------------------------------------------------------------

    def getattr(self, path: str, fh: Any = None) -> dict[str, int]:
        self._wait()
        st = os.fstat(fh.fh) if fh and fh.fh else os.lstat(self._full(path))
        attrs = {name: getattr(st, name) for name in STAT_FIELDS}
        for kind in ("atime", "mtime", "ctime"):  # fusepy reads st_<kind> when use_ns is set
            attrs[f"st_{kind}"] = attrs.pop(f"st_{kind}_ns")
        return attrs

    def access(self, path: str, mode: int) -> None:
        self._wait()
        if not os.access(self._full(path), mode):
            raise OSError(errno.EACCES, path)

    def readdir(self, path: str, fh: int) -> list[str]:
        self._wait()
        return [".", "..", *os.listdir(self._full(path))]

    def readlink(self, path: str) -> str:
        self._wait()
        return os.readlink(self._full(path))

    def statfs(self, path: str) -> dict[str, int]:
        self._wait()
        st = os.statvfs(self._full(path))
        return {name: getattr(st, name) for name in STATVFS_FIELDS}

    def chmod(self, path: str, mode: int) -> None:
        self._wait()
        os.chmod(self._full(path), mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        self._wait()
        os.lchown(self._full(path), uid, gid)

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        self._wait()
        if times is None:
            os.utime(self._full(path), follow_symlinks=False)
        else:
            os.utime(self._full(path), ns=times, follow_symlinks=False)

    def truncate(self, path: str, length: int, fh: Any = None) -> None:
        self._wait()
        if fh and fh.fh:
            os.ftruncate(fh.fh, length)
        else:
            os.truncate(self._full(path), length)

    def mknod(self, path: str, mode: int, dev: int) -> None:
        self._wait()
        full = self._full(path)
        os.mknod(full, mode, dev)
        self._own(full)

    def mkdir(self, path: str, mode: int) -> None:
        self._wait()
        full = self._full(path)
        os.mkdir(full, mode)
        self._own(full)

    def rmdir(self, path: str) -> None:
        self._wait()
        os.rmdir(self._full(path))

    def unlink(self, path: str) -> None:
        self._wait()
        os.unlink(self._full(path))

    def symlink(self, target: str, source: str) -> None:
        """fusepy's order: ``target`` is the new link's path, ``source`` what it points to."""
        self._wait()
        full = self._full(target)
        os.symlink(source, full)
        self._own(full)

    def link(self, target: str, source: str) -> None:
        self._wait()
        os.link(self._full(source), self._full(target))

    def rename(self, old: str, new: str) -> None:
        self._wait()
        os.rename(self._full(old), self._full(new))

    def open(self, path: str, fi: Any) -> int:
        self._wait()
        fi.fh = os.open(self._full(path), fi.flags)
        return 0

    def create(self, path: str, mode: int, fi: Any) -> int:
        self._wait()
        full = self._full(path)
        # Read-write whatever was asked: the kernel may read through this handle.
        flags = (fi.flags & ~os.O_ACCMODE) | os.O_RDWR | os.O_CREAT
        fi.fh = os.open(full, flags, mode)
        self._own(full)
        return 0

    # --- data: not delayed -----------------------------------------------------------------

    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        return os.pread(fi.fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fi: Any) -> int:
        return os.pwrite(fi.fh, data, offset)

    def flush(self, path: str, fi: Any) -> None:
        return None

    def fsync(self, path: str, datasync: int, fi: Any) -> None:
        if datasync:
            os.fdatasync(fi.fh)
        else:
            os.fsync(fi.fh)

    def release(self, path: str, fi: Any) -> None:
        os.close(fi.fh)


def mount_options(subtype: str, fsname: str) -> dict[str, Any]:
    """libfuse options: no kernel caching of attributes or entries, visible to every user."""
    return {
        "allow_other": True,  # the developer user, not only root who mounted it
        "default_permissions": True,  # the kernel checks modes; this daemon runs as root
        "use_ino": True,  # the real inode numbers, as `go` compares files by them
        "attr_timeout": 0,
        "entry_timeout": 0,
        "negative_timeout": 0,
        "subtype": subtype,
        "fsname": fsname,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="the directory to pass through")
    p.add_argument("mountpoint")
    p.add_argument("--latency-ms", type=float, default=0.5, help="delay per metadata operation")
    p.add_argument("--subtype", default="9p", help="the mount shows as fuse.SUBTYPE")
    p.add_argument("--fsname", default=WSL_SOURCE, help="the mount's source (libfuse escapes)")
    args = p.parse_args(argv)
    from fuse import FUSE

    ops = SlowPassthrough(args.source, args.latency_ms / 1000)
    FUSE(ops, args.mountpoint, raw_fi=True, foreground=True,
         **mount_options(args.subtype, args.fsname))  # fmt: skip


if __name__ == "__main__":
    main()
