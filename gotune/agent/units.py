"""Sizes as people write them, and bytes as people read them: the one size parser.

``parse_size`` reads curl's style (``512K``, ``8M``, ``1.5G``, also ``1GiB``,
``1gb``): the suffixes are binary, as in curl, wget and ``--limit-rate``
everywhere. Used by the mirror's limits, ``gotune wear --write-budget`` and the
settings. Standard library only.
"""

from __future__ import annotations

import re

# A number, an optional K/M/G/T and an optional "B" or "iB", any case; spaces around it,
# never a newline (a setting's value goes on a unit's command line).
_SIZE = re.compile(r"^ *([0-9]+(?:\.[0-9]+)?) *([kmgt]?)(i?b)? *\Z", re.IGNORECASE)
_SCALE = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def parse_size(text: str, what: str = "size", allow_zero: bool = False) -> int:
    """Bytes from ``512K`` (524288), ``8M``, ``1.5G``, ``1GiB`` or ``100``; ValueError if bad.

    + what: the name the error message uses (a flag, a setting)
    + allow_zero: accept ``0`` (a budget of nothing); sizes are positive otherwise
    """
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"invalid {what} {text!r} (use a number with an optional K, M, G suffix)")
    value = int(float(m.group(1)) * _SCALE[m.group(2).lower()])
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"invalid {what} {text!r}: must be positive")
    return value


def format_bytes(n: float | None) -> str:
    """``1536`` -> ``1.5 KiB``; whole bytes below 1 KiB, ``?`` when unknown."""
    if n is None:
        return "?"
    value = float(n)
    for unit in _BINARY_UNITS[:-1]:
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} {_BINARY_UNITS[-1]}"
