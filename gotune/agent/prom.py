"""The Prometheus text exposition format: the one renderer (and a reader for it).

The mirror's and the build cache's ``/metrics`` (their ``Metrics``) and the wear
check's node_exporter textfile all render through ``Exposition``: each metric
family once, with ``# HELP`` and ``# TYPE``, then its samples; label values
escaped as the format requires. ``parse_samples`` reads such text back
(``gotune mirror status``). Standard library only.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping

Labels = Mapping[str, str] | Iterable[tuple[str, str]]
LabelKey = tuple[tuple[str, str], ...]

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


class Metrics:
    """Thread-safe counters and gauges keyed by name and labels, for a ``/metrics`` page.

    + definitions: every metric once: name -> (``counter`` or ``gauge``, help); counters
      end in ``_total``
    + prefix: put before every name (``gotune_mirror_``)
    """

    def __init__(self, definitions: Mapping[str, tuple[str, str]], prefix: str) -> None:
        self.definitions = dict(definitions)
        self.prefix = prefix
        self._lock = threading.Lock()
        self._values: dict[str, dict[LabelKey, float]] = {name: {} for name in definitions}

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._values[name]
            series[key] = series.get(key, 0.0) + value

    def set(self, name: str, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[name][key] = value

    def replace(self, name: str, values: dict[LabelKey, float]) -> None:
        """Set a gauge's whole label set at once (e.g. one-hot status gauges)."""
        with self._lock:
            self._values[name] = dict(values)

    def get(self, name: str, **labels: str) -> float:
        key = tuple(sorted(labels.items()))
        with self._lock:
            return self._values[name].get(key, 0.0)

    def total(self, name: str) -> float:
        with self._lock:
            return sum(self._values[name].values())

    def render(self) -> str:
        """Every declared metric in the Prometheus text format (/metrics).

        A metric nothing has touched yet shows 0, except the one-hot ``*_status``
        gauges, which show no sample until a status is known.
        """
        with self._lock:
            snapshot = {name: dict(series) for name, series in self._values.items()}
        ex = Exposition()
        for name, (kind, help_text) in self.definitions.items():
            ex.declare(self.prefix + name, kind, help_text)
            series = snapshot[name] or ({(): 0.0} if not name.endswith("_status") else {})
            for key, value in sorted(series.items()):
                ex.add(self.prefix + name, kind, help_text, key, value)
        return ex.text()
