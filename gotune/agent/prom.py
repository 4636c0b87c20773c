"""The Prometheus text exposition format: the one renderer (and a reader for it).

The mirror's ``/metrics`` and the wear check's node_exporter textfile both render
through ``Exposition``: each metric family once, with ``# HELP`` and ``# TYPE``,
then its samples; label values escaped as the format requires. ``parse_samples``
reads such text back (``gotune mirror status``). Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

Labels = Mapping[str, str] | Iterable[tuple[str, str]]

# Integers are exact in a float below 2**53; larger ones are written as floats.
_EXACT_INT = 2**53


def escape_label(value: str) -> str:
    """A label value as the text format wants it: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    """``3`` for whole numbers, ``0.25`` otherwise, and the format's NaN/+Inf/-Inf."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < _EXACT_INT:
        return str(int(value))
    return repr(float(value))


def sample(name: str, labels: Labels, value: float) -> str:
    """One sample line: ``name{k="v",...} value`` (labels in the order given)."""
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs)
    return f"{name}{{{inner}}} {format_value(value)}" if inner else f"{name} {format_value(value)}"


class Exposition:
    """Metric families in the order first declared, each with HELP and TYPE once."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def declare(self, name: str, kind: str, help_text: str) -> None:
        """A family (``counter``, ``gauge``), shown even when it has no sample."""
        self._families.setdefault(name, (kind, help_text, []))

    def add(self, name: str, kind: str, help_text: str, labels: Labels, value: float) -> None:
        """A sample of family ``name``, declaring the family on first use."""
        self.declare(name, kind, help_text)
        self._families[name][2].append(sample(name, labels, value))

    def text(self) -> str:
        out: list[str] = []
        for name, (kind, help_text, samples) in self._families.items():
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples)
        return "\n".join(out) + "\n"


def parse_samples(text: str) -> dict[str, float]:
    """``{'name{labels}': value}`` of every sample line; comments and garbage are skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out
