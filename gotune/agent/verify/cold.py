"""``--cold``: the page cache dropped before every timed run, as the morning after a reboot.

Warm, a build reads its caches from RAM whatever disk they are on; cold, every
cache entry and source file comes from the device, which is when an HDD or a
network home really hurts and a tmpfs restored at boot helps.

Dropping the page cache is root's (``sync; echo 3 > /proc/sys/vm/drop_caches``),
but the benchmarks run as the developer user in a child that gave root up. So the
root parent serves the child's requests over a pair of pipes (``Dropper``): the
child writes a byte, the parent syncs, drops and answers. It is global: every
process on the host loses its cached files, which is why it is asked for, never
done by default. Standard library only.
"""

from __future__ import annotations

import contextlib
import os

from gotune.agent.verify.process import ERROR_TEXT_MAX, RunnerError

DROP_CACHES = "/proc/sys/vm/drop_caches"
# 3: the page cache and the dentry and inode caches (1 would leave directory lookups warm).
DROP_ALL = "3"
REQUEST = b"d"
DONE = b"k"


def drop_now() -> str | None:
    """Sync, then drop every clean cached page (as root); the error text, or None."""
    os.sync()
    try:
        with open(DROP_CACHES, "w", encoding="ascii") as fh:
            fh.write(DROP_ALL)
    except OSError as exc:
        return f"cannot drop the page cache: {DROP_CACHES}: {exc.strerror}"
    return None


def refusal() -> str | None:
    """Why ``--cold`` cannot run on this host, or None (the check drops the cache once)."""
    if os.getuid() != 0:
        return ("--cold drops the page cache before each run (echo 3 > "
                f"{DROP_CACHES}), which needs root on the host: run gotune verify as root "
                "(sudo) or connect as root")
    why = drop_now()
    return f"--cold: {why} (a container's /proc/sys is read-only)" if why else None


class Dropper:
    """The pipes between the user-side child (asks) and the root parent (drops)."""

    def __init__(self) -> None:
        self.req_r, self.req_w = os.pipe()
        self.ack_r, self.ack_w = os.pipe()

    def child_side(self) -> None:
        """In the child: keep the ends it writes requests to and reads answers from."""
        os.close(self.req_r)
        os.close(self.ack_w)

    def parent_side(self) -> None:
        """In the parent: keep the ends it reads requests from and answers on."""
        os.close(self.req_w)
        os.close(self.ack_r)

    def drop(self) -> None:
        """(child) Have the parent drop the page cache; RunnerError when it could not."""
        os.write(self.req_w, REQUEST)
        answer = os.read(self.ack_r, ERROR_TEXT_MAX)
        if answer != DONE:
            raise RunnerError(answer.decode(errors="replace") or "the page cache was not dropped")

    def serve_one(self) -> bool:
        """(parent) Answer one request; False when the child closed its end (it is done)."""
        if not os.read(self.req_r, 1):
            return False
        why = drop_now()
        os.write(self.ack_w, DONE if why is None else why.encode()[:ERROR_TEXT_MAX])
        return True

    def close_parent(self) -> None:
        """(parent) Close its ends once the child is done."""
        for fd in (self.req_r, self.ack_w):
            with contextlib.suppress(OSError):
                os.close(fd)
