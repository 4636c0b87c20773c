"""The rollout's result for machines (``--json``) and for people (wave lines, a table).

The JSON is the contract of ``gotune rollout --json``; each host's entry is its record
in the state file, so the two always agree::

    {"waves": [{"hosts": [...], "passed": [...], "failed": [...], "pending": [...],
                "skipped": [...], "ran": bool, "elapsed_s": 1.2}],
     "halted": bool, "interrupted": bool, "reason": str|null,
     "hosts": {NAME: {"wave": 1, "outcome": "passed", "changed": 14, "verdict": "pass",
                      "benchmarks": [{"name", "verdict", "ratio", "tuned_s", ...}],
                      "gate": [why it failed], "skipped": bool, "hardware": {...}, ...}},
     "state": PATH, "rerun_inventory": PATH|null, "elapsed_s": 12.3}
"""

from __future__ import annotations

from typing import Any

from gotune.rollout import state as st
from gotune.rollout.run import Outcome, Wave

# The columns of the summary table, and the room the note gets before it is cut.
TABLE_COLUMNS = ("host", "wave", "outcome", "changed", "verify", "note")
NOTE_WIDTH = 100


def _by_outcome(state: st.RolloutState, names: list[str], outcomes: frozenset[str]) -> list[str]:
    return [n for n in names if state.hosts[n]["outcome"] in outcomes]


def wave_json(wave: Wave, state: st.RolloutState) -> dict[str, Any]:
    """One wave: its hosts by outcome as the state file has them now."""
    return {
        "number": wave.number, "hosts": wave.hosts,
        "passed": _by_outcome(state, wave.hosts, frozenset({st.PASSED})),
        "failed": _by_outcome(state, wave.hosts, st.COUNTED),
        "pending": _by_outcome(state, wave.hosts, frozenset({st.PENDING, st.APPLYING})),
        "skipped": wave.skipped if wave.ran else [], "ran": wave.ran, "elapsed_s": wave.elapsed_s,
    }  # fmt: skip


def to_json(outcome: Outcome, state: st.RolloutState, rerun: str | None) -> dict[str, Any]:
    """The whole result (the ``--json`` document)."""
    done = {n for w in outcome.waves if w.ran for n in w.todo}
    hosts = {}
    for name, record in state.hosts.items():
        entry = dict(record)
        entry["skipped"] = name not in done and record["outcome"] == st.PASSED
        if name in outcome.verified:
            entry["verify"] = outcome.verified[name]
        hosts[name] = entry
    return {
        "waves": [wave_json(w, state) for w in outcome.waves],
        "halted": outcome.halted, "interrupted": outcome.interrupted, "reason": outcome.reason,
        "hosts": hosts, "state": str(state.path), "rerun_inventory": rerun,
        "elapsed_s": outcome.elapsed_s,
    }  # fmt: skip


def phase_line(wave: Wave, waves: int, phase: str, names: list[str]) -> str:
    """The line printed as a wave starts a phase (applying, verifying, undoing): its hosts."""
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return (f"wave {wave.number}/{waves}: {phase} {len(names)} host(s)"
            + (f": {shown}" if names else ""))


def wave_line(wave: Wave, outcome: Outcome, state: st.RolloutState) -> str:
    """The line printed as each wave ends: the wave's hosts, the fleet, the time."""
    label = " (canary)" if wave.number == 1 else ""
    if not wave.todo:
        head = f"{len(wave.hosts)} host(s) passed before, skipped"
    else:
        head = f"{len(wave.todo)} host(s): {len(wave.passed)} passed, {len(wave.failed)} failed"
    outcomes = [h["outcome"] for h in state.hosts.values()]
    passed = outcomes.count(st.PASSED)
    failed = sum(1 for o in outcomes if o in st.COUNTED)
    pending = len(outcomes) - passed - failed
    return (f"wave {wave.number}/{len(outcome.waves)}{label}: {head} · fleet: {passed} passed, "
            f"{failed} failed, {pending} pending · {outcome.elapsed_s:.1f} s")


def _note(record: dict[str, Any]) -> str:
    parts = list(record.get("gate") or [])
    if record.get("undone"):
        parts.append("undone")
    elif record.get("undo_error"):
        parts.append(f"undo failed: {record['undo_error']}")
    note = "; ".join(parts)
    return note if len(note) <= NOTE_WIDTH else note[: NOTE_WIDTH - 1] + "…"


def table(doc: dict[str, Any]) -> str:
    """The summary table: one row per host, failures explained."""
    rows = [TABLE_COLUMNS]
    for name, h in doc["hosts"].items():
        outcome = h["outcome"] if h["outcome"] == st.PASSED else h["outcome"].upper()
        if h.get("skipped"):
            outcome += " (before)"
        rows.append((name, str(h["wave"]), outcome, str(h.get("changed", "-")),
                     h.get("verdict") or "-", _note(h)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_COLUMNS) - 1)]
    return "\n".join(
        "  ".join(r[i].ljust(widths[i]) for i in range(len(widths))) + "  " + r[-1]
        for r in rows
    ).rstrip()


def closing(doc: dict[str, Any], inventory: str) -> str:
    """The last lines: how the rollout ended and what to do next."""
    hosts = doc["hosts"].values()
    passed = sum(1 for h in hosts if h["outcome"] == st.PASSED)
    untouched = sum(1 for h in hosts if h["outcome"] == st.PENDING)
    lines = []
    if doc["halted"] or doc["interrupted"]:
        lines.append(f"rollout stopped: {doc['reason']}; {passed} of {len(doc['hosts'])} "
                     f"host(s) passed, {untouched} untouched")
        lines.append(f"after fixing the cause: gotune rollout {inventory} --resume")
    else:
        failed = len(doc["hosts"]) - passed
        lines.append(f"rollout done: {passed} of {len(doc['hosts'])} host(s) passed"
                     + (f", {failed} failed within the budget" if failed else "")
                     + f" ({doc['elapsed_s']:.1f} s)")
    if doc.get("rerun_inventory"):
        lines.append(f"failed and unreached hosts: {doc['rerun_inventory']}")
    lines.append(f"state: {doc['state']}")
    return "\n".join(lines)
