"""``gotune wear``: SSD wear per drive, and (``--record``) the periodic check.

Runs on targets from the zipapp, so it uses only the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from gotune.agent.paths import WEAR_STATE_DIR
from gotune.agent.units import parse_size
from gotune.agent.wear import check, history
from gotune.agent.wear.probe import probe, read_recorded
from gotune.agent.wear.record import DeviceWear
from gotune.agent.wear.state import WARN_WRITE_BUDGET_BYTES
from gotune.agent.wear.status import Thresholds, classify
from gotune.errors import GotuneError, UsageError


def _write_budget(text: str | None) -> int:
    """``--write-budget`` in bytes (0: no caching at warn); the default without one."""
    if not text:
        return WARN_WRITE_BUDGET_BYTES
    try:
        return parse_size(text, "--write-budget", allow_zero=True)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _thresholds(args: argparse.Namespace) -> Thresholds:
    defaults = Thresholds()
    th = Thresholds(
        warn_percent=_opt(args, "warn_percent", defaults.warn_percent),
        critical_percent=_opt(args, "critical_percent", defaults.critical_percent),
        media_errors_critical=_opt(args, "media_errors_critical", defaults.media_errors_critical),
    )
    try:
        th.check()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return th


def _opt(args: argparse.Namespace, name: str, default: int) -> int:
    value = getattr(args, name, None)
    return default if value is None else int(value)


def _read(args: argparse.Namespace) -> list[DeviceWear]:
    files = getattr(args, "smartctl_json", None)
    if files:
        records = []
        for name in files:
            path = Path(name)
            try:
                records.extend(read_recorded([path]))
            except OSError as exc:
                raise GotuneError(f"cannot read {name}: {exc.strerror or exc}") from None
            except ValueError as exc:
                raise GotuneError(f"{name}: not smartctl JSON output ({exc})") from None
        return records
    return probe(sysroot=Path(getattr(args, "sysroot", None) or "/"))


def _gib(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("PB", 10**15), ("TB", 10**12), ("GB", 10**9), ("MB", 10**6)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _table(devices: list[dict[str, Any]], recorded: bool) -> str:
    head = ["DEVICE", "KIND", "MODEL", "USED", "WRITTEN", "SPARE", "STATUS"]
    if recorded:
        head += ["RATE/DAY", "100% ON"]
    head.append("REASON")
    rows = [head]
    for d in devices:
        pct = d.get("percentage_used")
        spare = d.get("available_spare")
        row = [
            str(d["device"]),
            str(d["kind"]),
            str(d.get("model") or "-"),
            f"{pct}%" if pct is not None else "-",
            _gib(d.get("bytes_written")),
            f"{spare}%" if spare is not None else "-",
            str(d["wear_status"]),
        ]
        if recorded:
            rate = d.get("write_rate_bytes_per_day")
            row += [
                _gib(rate) if rate is not None else "-",
                str(d.get("projected_full_date") or "-"),
            ]
        row.append(str(d.get("reason") or ""))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    return "\n".join(
        "  ".join(r[i].ljust(widths[i]) for i in range(len(widths))) + "  " + r[-1] for r in rows
    )


def run(args: argparse.Namespace) -> int:
    th = _thresholds(args)
    budget = _write_budget(getattr(args, "write_budget", None))
    records = _read(args)
    for rec in records:
        classify(rec, th)
    if getattr(args, "record", False):
        try:
            now = check.now_from_env()
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        textfile = getattr(args, "textfile_dir", None)
        state_dir = Path(getattr(args, "state_dir", None) or WEAR_STATE_DIR)
        try:
            result = check.run_check(
                records, state_dir, Path(textfile) if textfile else None, now, budget
            )
        except OSError as exc:
            where = exc.filename or state_dir
            raise GotuneError(f"wear check cannot write {where}: {exc.strerror or exc}") from None
        if args.json:
            print(json.dumps(result.to_json(), indent=2))
        else:
            print(_table(result.devices, recorded=True))
            st = result.state
            print(f"\nhost: {st.status} — {st.reason}")
            print(f"state: {result.state_path}  history: {result.history_path}", end="")
            print(f"  metrics: {result.metrics_path}" if result.metrics_path else "")
        return 0
    # A history from earlier checks (the timer's, or --state-dir) adds rate and projection.
    hist_dir = getattr(args, "state_dir", None) or WEAR_STATE_DIR
    hist = Path(hist_dir) / check.HISTORY_FILE
    readings = history.load(hist) if os.access(hist, os.R_OK) else []
    if readings:
        try:
            now = check.now_from_env()
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        devices = check.with_trends(records, readings, now)
    else:
        devices = [r.to_json() for r in records]
    if args.json:
        print(json.dumps({"devices": devices}, indent=2))
    else:
        print(_table(devices, recorded=bool(readings)) if devices else "no drives found")
    return 0
