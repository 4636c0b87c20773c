"""The rollout loop: wave after wave, each applied and verified in parallel, then gated.

For each wave (``gotune.rollout.waves``), in order:

1. its hosts are marked APPLYING in the state file (a crash from here on leaves them to
   be done again by ``--resume``; apply is idempotent, so a host done twice changes
   nothing the second time);
2. they are connected as one pyinfra inventory of their own and applied at once by
   apply's own machinery (``gotune.commands.apply.apply_hosts``: facts, plan, root
   check, prepare, run); a host not reached or not applied fails;
3. the applied hosts are verified at once (``gotune.verify.run(..., parallel=True)``);
4. each host is gated (``gotune.rollout.gate``) and its outcome saved at once;
5. a host that was changed and did not pass is undone (``gotune undo`` on it) unless
   ``--keep-failed``, so a halted fleet holds only hosts that passed and hosts never
   touched;
6. when more hosts failed, over all waves, than the budget allows, the rollout halts:
   no later wave is touched.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gotune.errors import GotuneError
from gotune.rollout import state as st
from gotune.rollout.gate import baseline, judge
from gotune.rollout.hardware import hardware_class
from gotune.rollout.inventory import part
from gotune.rollout.waves import Budget
from gotune.settings import Settings
from gotune.verify import Workloads

# Seconds to let a wave's greenlets stop after Ctrl-C before disconnecting.
INTERRUPT_GRACE_S = 5


@dataclass(frozen=True)
class Options:
    """How to roll out (the command-line flags, parsed).

    + gate: ``fail`` or ``slower`` (``gotune.rollout.gate``)
    + keep_failed: leave a host that failed as it is rather than undo it
    + benchmarks: verify's benchmarks (None: its standard set; []: checks only)
    + runs: runs per benchmark variant (None: each benchmark's default)
    + workloads: verify's projects, ``--cold`` and generated service size
    + parallel: hosts worked on at once within a wave (None: pyinfra's default)
    """

    gate: str
    keep_failed: bool = False
    benchmarks: list[str] | None = None
    runs: int | None = None
    workloads: Workloads | None = None
    parallel: int | None = None


@dataclass
class Wave:
    """One wave: its hosts, and what happened to them in this run.

    + number: 1 for the canary
    + hosts: every host of the wave
    + todo: those worked on in this run (the others passed before with the same settings)
    + ran: False when the rollout halted (or was stopped) before this wave
    """

    number: int
    hosts: list[str]
    todo: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    ran: bool = False
    elapsed_s: float = 0.0

    @property
    def skipped(self) -> list[str]:
        """Hosts that had passed before with the same settings: left alone."""
        return [n for n in self.hosts if n not in self.todo]


@dataclass
class Outcome:
    """What the rollout did: its waves, whether it halted and why, this run's results.

    + verified: host name -> its verify result, for hosts verified in this run
    + applied: host name -> its apply entry, for hosts applied in this run
    """

    waves: list[Wave]
    halted: bool = False
    interrupted: bool = False
    reason: str | None = None
    verified: dict[str, dict[str, Any]] = field(default_factory=dict)
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)
    elapsed_s: float = 0.0


def compact_benchmarks(verified: dict[str, Any]) -> list[dict[str, Any]]:
    """The benchmark figures the state keeps and the fleet report draws, per benchmark:
    tuned against Go's defaults (``ratio``, ``verdict``), against the setup before gotune
    (``headline_ratio``), and which of the two the gate judged (``baseline``)."""
    out = []
    for b in verified.get("benchmarks") or []:
        against, against_verdict, _ = baseline(b)
        out.append({
            "name": b["name"], "verdict": b.get("verdict"), "ratio": b.get("ratio"),
            "headline_ratio": b.get("headline_ratio"), "baseline": against,
            "baseline_verdict": against_verdict,
            "tuned_s": (b.get("tuned") or {}).get("median_s"),
            "default_s": (b.get("default") or {}).get("median_s"),
            "before_s": (b.get("before") or {}).get("median_s"),
            "target_met": b.get("target_met"), "error": b.get("error"),
        })  # fmt: skip
    return out


@dataclass
class Rollout:
    """A rollout of ``inventory`` recorded in ``state``, wave by wave.

    + inventory: the whole fleet (a pyinfra Inventory)
    + settings: every host's validated settings
    + state: the state file (hosts to do are not PASSED)
    + waves: the hosts of each wave, the canary first
    + budget: the fleet-wide failure budget
    + options: gate, benchmarks, parallelism
    + on_wave: called after each wave (and for a wave that had nothing to do)
    + on_phase: called as a wave starts to apply, verify and undo (what, which hosts)
    """

    inventory: Any
    settings: dict[str, Settings]
    state: st.RolloutState
    waves: list[list[str]]
    budget: Budget
    options: Options
    on_wave: Callable[[Wave, Outcome], None] = lambda wave, outcome: None
    on_phase: Callable[[Wave, str, list[str]], None] = lambda wave, phase, names: None

    def run(self) -> Outcome:
        """Roll out every wave until done, halted by the budget, or interrupted (Ctrl-C)."""
        started = time.monotonic()
        outcome = Outcome([Wave(i, names) for i, names in enumerate(self.waves, start=1)])
        self.state.set_status(st.RUNNING)
        try:
            with _interrupts_in_main_greenlet():
                self._waves(outcome, started)
        except KeyboardInterrupt:
            outcome.interrupted = True
            outcome.reason = "interrupted (Ctrl-C)"
        outcome.elapsed_s = round(time.monotonic() - started, 2)
        if outcome.interrupted:
            self.state.set_status(st.INTERRUPTED, outcome.reason)
        elif outcome.halted:
            self.state.set_status(st.HALTED, outcome.reason)
        else:
            self.state.set_status(st.COMPLETE, None)
        return outcome

    def _waves(self, outcome: Outcome, started: float) -> None:
        """Each wave in turn, until the budget is exceeded."""
        for wave in outcome.waves:
            wave.todo = [n for n in wave.hosts if self.state.hosts[n]["outcome"] != st.PASSED]
            wave.ran = True
            wave_start = time.monotonic()
            if wave.todo:
                self._wave(wave, outcome)
            wave.elapsed_s = round(time.monotonic() - wave_start, 2)
            outcome.elapsed_s = round(time.monotonic() - started, 2)
            self.on_wave(wave, outcome)
            failed = self.state.failed()
            if self.budget.exceeded(len(failed)):
                outcome.halted = True
                outcome.reason = (
                    f"{len(failed)} host(s) failed, more than --max-fail {self.budget.spec} "
                    f"allows ({self.budget.allowed}): {', '.join(failed)}")
                return

    def _wave(self, wave: Wave, outcome: Outcome) -> None:
        """Apply, verify, gate and (when failed) undo the wave's hosts still to do."""
        from gotune.commands.apply import apply_hosts, failed_entries
        from gotune.inventory import connect
        from gotune.verify import run as verify_hosts

        for name in wave.todo:
            self.state.hosts[name].update(outcome=st.APPLYING, wave=wave.number)
        self.state.save()
        config = {"PARALLEL": self.options.parallel} if self.options.parallel else {}
        settings = {n: self.settings[n] for n in wave.todo}
        with connect(part(self.inventory, wave.todo), require_any=False, **config) as conn:
            self.on_phase(wave, "applying", wave.todo)
            try:
                applied = apply_hosts(conn, settings, yes=True, strict=False)
                entries, plans = applied.report["hosts"], applied.plans
            except GotuneError as exc:  # the deploy could not be prepared: nothing ran
                entries, plans = failed_entries({n: str(exc) for n in wave.todo}), {}
            except KeyboardInterrupt:
                _stop(conn.state)
                raise
            outcome.applied.update(entries)
            ok = [h for h in conn.hosts if entries.get(h.name, {}).get("ok")]
            self.on_phase(wave, "verifying", [h.name for h in ok])
            try:
                verified = verify_hosts(
                    ok, benchmarks=self.options.benchmarks, runs=self.options.runs,
                    users={n: list(s.users) for n, s in settings.items()},
                    workloads=self.options.workloads, parallel=True)["hosts"]
            except KeyboardInterrupt:
                _stop(conn.state)
                raise
        outcome.verified.update(verified)
        for name in wave.todo:
            entry = entries.get(name) or {"ok": False, "error": "not applied"}
            reasons = judge(entry, verified.get(name), self.options.gate)
            result = verified.get(name) or {}
            record: dict[str, Any] = {
                "outcome": st.PASSED if not reasons else (
                    st.UNREACHABLE if name in conn.unreachable else st.FAILED),
                "changed": entry.get("changed", 0), "gate": reasons,
                "verdict": result.get("verdict"), "benchmarks": compact_benchmarks(result),
                "error": entry.get("error"),
            }  # fmt: skip
            if name in plans:
                record["hardware"] = hardware_class(plans[name].facts)
            self.state.update(name, **record)
            (wave.failed if reasons else wave.passed).append(name)
        touched = [n for n in wave.failed if n in plans]
        if touched and not self.options.keep_failed:
            self.on_phase(wave, "undoing", touched)
            self._undo(touched)

    def _undo(self, names: list[str]) -> None:
        """Restore what gotune changed on hosts that failed; each host's record says how
        that went (``undone``, ``undo_error``)."""
        from gotune.commands.undo import undo_hosts
        from gotune.inventory import connect

        try:
            with connect(part(self.inventory, names), require_any=False) as conn:
                report = undo_hosts(conn, yes=True)["hosts"]
        except GotuneError as exc:
            report = {n: {"ok": False, "error": str(exc)} for n in names}
        for name in names:
            entry = report.get(name) or {"ok": False, "error": "not undone"}
            self.state.update(name, undone=bool(entry.get("ok")),
                              undo_error=None if entry.get("ok") else entry.get("error"))


@contextlib.contextmanager
def _interrupts_in_main_greenlet() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt in the main greenlet (the rollout loop), which stops
    the wave's greenlets and records where it stopped. Python's own handler raises it in
    whichever greenlet runs at that moment (often a host's operation), and gevent prints
    that greenlet's traceback before passing it on."""
    import gevent

    main = gevent.getcurrent()
    hub = gevent.get_hub()
    watcher = gevent.signal_handler(
        signal.SIGINT, lambda: hub.loop.run_callback(main.throw, KeyboardInterrupt))
    try:
        yield
    finally:
        watcher.cancel()
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _stop(state: Any) -> None:
    """Stop every greenlet still working on the wave's hosts (after Ctrl-C)."""
    for pool in (state.pool, state.fact_pool):
        pool.kill(block=True, timeout=INTERRUPT_GRACE_S)
