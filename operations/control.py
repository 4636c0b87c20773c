"""What operations do on the control machine: download a Go tarball, make the builders'
token. A dry run (``gotune apply --dry``) shows what would change and does neither.

pyinfra runs each operation up to its first command while it prepares, in dry runs
too, so an operation asks ``dry()`` before such a step. A plain flag, not a context
variable: pyinfra's greenlets would not see one set outside them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_dry = False


def dry() -> bool:
    """Whether this is a dry run: nothing may be written or fetched on the control machine."""
    return _dry


@contextmanager
def dry_run(on: bool = True) -> Iterator[None]:
    """A dry run while inside (``on``); the flag as it was after."""
    global _dry
    before, _dry = _dry, on
    try:
        yield
    finally:
        _dry = before
