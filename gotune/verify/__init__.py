"""Verify: rerun the benchmarks now vs before gotune vs Go's defaults, check the state, explain.

For any caller holding connected pyinfra hosts::

    from gotune.verify import run
    result = run(hosts)
    # -> {"hosts": {NAME: {"verdict": "pass"|"fail", "checks": [...],
    #                      "benchmarks": [...], "diagnosis": [...], ...}}}

Each host is compared with the plan apply stored on it (``/var/lib/gotune/plan.json``,
read back as a typed ``Plan``; ``"expected_from": "plan"``); a host apply never
ran on is compared with its users' GOENV files (``"expected_from": "GOENV file"``).
Each host's result is appended to its history (``/var/lib/gotune/verify/history.jsonl``
when the runner runs as root), and the earlier results come back in ``history``
for the trend chart. Verify never imports deploys and never re-plans.

Modules, in the order the data flows:

- ``gotune.agent.verify`` — the runner, executed on the host (the agent's
  ``verify-runner``; standard library only)
- ``remote``  — runs the runner through pyinfra (the installed agent, or an
  uploaded copy) and reads its answer
- ``gotune.agent.stats`` — medians, ratio, the "no measurable difference" rule
- ``checks``  — state checks from the observations, one module per component
- ``diagnose``— likely causes of a failure
- ``explain`` — why a difference is, or is not, there (from the variants' placements)
- ``result``  — one host's result document and its history line
- ``table``, ``html`` — the terminal table and the self-contained HTML report
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Seconds a parallel verify waits beyond one host's runner and history time.
PARALLEL_SLACK_S = 60


@dataclass(frozen=True)
class Workloads:
    """What verify builds besides the seed's benchmarks, and how.

    + projects: Go module directories to build on every host, besides each host's
      ``gotune_projects``
    + cold: drop the page cache before every timed run (root on the host)
    + workload_packages: the generated service's size (None: its default, 200)
    """

    projects: Sequence[str] = ()
    cold: bool = False
    workload_packages: int | None = None

    def request(self, host: Any) -> dict[str, Any]:
        """The runner's arguments for ``host`` (its own projects first)."""
        from gotune.settings import validate_host_data

        data = {k: v for k, v in host.data.dict().items() if k.startswith("gotune_")}
        mine = validate_host_data(data, host.name).projects
        out: dict[str, Any] = {"projects": list(dict.fromkeys([*mine, *self.projects]))}
        if self.cold:
            out["cold"] = True
        if self.workload_packages:
            out["workload_packages"] = self.workload_packages
        return out


def stored_plan(host: Any) -> tuple[Any, str | None]:
    """(the Plan apply stored on the host or None, why it cannot be read)."""
    from gotune.facts.state import StoredPlan
    from gotune.plan.model import Plan

    data = host.get_fact(StoredPlan)
    if data is None:
        return None, None
    try:
        return Plan.from_dict(data), None
    except ValueError as exc:
        return None, f"/var/lib/gotune/plan.json: {exc}"


def run(hosts: Iterable[Any], thorough: bool = False, runs: int | None = None,
        benchmarks: list[str] | None = None, record: bool = True,
        users: Mapping[str, list[str]] | None = None, workloads: Workloads | None = None,
        parallel: bool = False) -> dict[str, Any]:
    """Verify each host; the per-host JSON of ``gotune verify --json``.

    + hosts: the connected pyinfra Hosts to verify
    + thorough: also run the cold cmd/go build (about a minute per variant)
    + runs: runs per variant instead of each benchmark's default
    + benchmarks: benchmark names to run (default: the standard set; [] for checks only)
    + record: append each result to the host's history
    + users: host name -> developer users; default: the host's ``gotune_users`` setting
    + workloads: projects to build, ``--cold``, the generated service's size (``Workloads``)
    + parallel: verify every host at once (greenlets on pyinfra's pool), as rollout does
      for a wave of separate machines; by default one after the other, since benchmarks
      on hosts that share hardware would disturb each other if run at once
    """
    from gotune.agent.stats import DECISIVE_RATIO, MIN_RUNS_FOR_VERDICT, NOISE_FRACTION

    args: dict[str, Any] = {"thorough": thorough,
                            "confirm": {"min_runs": MIN_RUNS_FOR_VERDICT,
                                        "noise_fraction": NOISE_FRACTION,
                                        "decisive_ratio": DECISIVE_RATIO}}
    if runs:
        args["runs"] = runs
    if benchmarks is not None:
        args["benchmarks"] = benchmarks
    workloads = workloads or Workloads()

    def one(host: Any) -> dict[str, Any]:
        host_users = (users or {}).get(host.name)
        if host_users is None:
            host_users = _users_of(host)
        return _verify_host(host, {**args, "users": host_users, **workloads.request(host)},
                            record)

    hosts = list(hosts)
    out: dict[str, Any] = {"hosts": {}}
    if workloads.cold:
        out["cold"] = True
    if not parallel:
        out["hosts"] = {host.name: one(host) for host in hosts}
        return out
    from gotune.inventory import describe_error, each_host
    from gotune.verify.remote import RECORD_TIMEOUT_S, RUN_TIMEOUT_S
    from gotune.verify.result import host_result

    done, errors = each_host(hosts, one, RUN_TIMEOUT_S + RECORD_TIMEOUT_S + PARALLEL_SLACK_S)
    for name, exc in errors.items():  # a host that never answered fails as the runner would
        done[name] = host_result({"error": f"{name}: verify runner: {describe_error(exc)}"})
    out["hosts"] = {host.name: done[host.name] for host in hosts}
    return out


def _verify_host(host: Any, args: dict[str, Any], record: bool) -> dict[str, Any]:
    """One host's result: run the runner with ``args``, judge it, keep it in the history."""
    from gotune.errors import GotuneError
    from gotune.verify.remote import host_agent, record_history
    from gotune.verify.result import history_record, host_result

    plan, plan_error = stored_plan(host)
    with host_agent(host) as agent:
        try:
            raw = agent.run(args)
        except GotuneError as exc:
            raw = {"error": str(exc)}
        result = host_result(raw, plan)
        result["expected_from"] = "plan" if plan is not None else "GOENV file"
        if plan_error:
            result["plan_error"] = plan_error
        if record and raw.get("history_path") and not raw.get("error"):
            err = record_history(agent, str(raw["history_path"]), history_record(result))
            if err:
                result["history_error"] = err
    return result


def _users_of(host: Any) -> list[str]:
    """The host's developer users from its validated settings (none: the connected user)."""
    from gotune.settings import validate_host_data

    data = {k: v for k, v in host.data.dict().items() if k.startswith("gotune_")}
    settings = validate_host_data(data, host.name)
    return list(settings.users)
