"""Diagnosis: when a check fails or a target is missed, name the likely cause.

Each rule reads the runner's observations of the host (where each cache lives,
the CPU frequency limits) and returns ``{"cause", "detail"}``; a cause about where a
cache lives carries the measurement that shows it (``with_evidence``: the benchmark
that missed its target, and a variant that met it with that cache elsewhere). Rules run only
when something failed, so a healthy host gets an empty list; a failure that no
rule explains gets one ``unknown`` entry rather than a guess.
"""

from __future__ import annotations

from typing import Any

from gotune.agent.mounts import is_host_shared, is_network_or_fuse
from gotune.verify import explain
from gotune.verify.checks.caches import TMPFS_MIN_FREE_BYTES, human_bytes
from gotune.verify.table import seconds

# scaling_max_freq more than 5 % below cpuinfo_max_freq is a cap (a power
# profile, thermal limit or cpupower setting), not rounding between drivers.
CPUFREQ_CAP_FRACTION = 0.95
# Causes about where a cache lives: a missed target that uses that cache is their evidence.
STORAGE_EVIDENCE = frozenset({"9p_storage", "network_storage", "rotational_storage"})
# errno names that mean the user may not write there.
DENIED_ERRNOS = frozenset({"EACCES", "EPERM", "EROFS"})

CAUSES = ("permission_denied", "tmpfs_full", "disk_full", "network_storage", "9p_storage",
          "rotational_storage", "cpu_frequency_capped", "go_missing", "env_override",
          "not_as_planned", "unknown")


def _cause(cause: str, detail: str) -> dict[str, str]:
    return {"cause": cause, "detail": detail}


def storage_causes(user: str, key: str, obs: dict[str, Any]) -> list[dict[str, str]]:
    """What is wrong with where one cache lives."""
    out: list[dict[str, str]] = []
    path, fstype = obs.get("path", "?"), obs.get("fstype")
    if obs.get("writable") is False and obs.get("write_errno") in DENIED_ERRNOS:
        owner = f" (owned by {obs.get('owner')}, mode {obs.get('mode')})" if obs.get(
            "exists") else ""
        out.append(_cause("permission_denied",
                          f"{user} cannot write {key} {path}: {obs.get('write_error')}{owner}"))
    free = obs.get("free_bytes")
    full = (obs.get("write_errno") == "ENOSPC"
            or (isinstance(free, int) and free < TMPFS_MIN_FREE_BYTES))
    if full and fstype == "tmpfs":
        out.append(_cause("tmpfs_full", f"{key} {path} is on tmpfs {obs.get('mount')} with "
                                        f"{human_bytes(free)} free of "
                                        f"{human_bytes(obs.get('size_bytes'))}"))
    elif full:
        out.append(_cause("disk_full", f"{key} {path}: {obs.get('mount')} has "
                                       f"{human_bytes(free)} free"))
    # 9p and drvfs are how WSL2 and VMs share a host directory: every file
    # operation is a round trip to the host, the worst home for a build cache.
    if is_host_shared(fstype):
        out.append(_cause("9p_storage", f"{key} {path} is on {fstype} ({obs.get('mount')}), "
                                        "a host-shared filesystem: every file access is a "
                                        "round trip"))
    elif is_network_or_fuse(fstype):
        out.append(_cause("network_storage", f"{key} {path} is on {fstype} "
                                             f"({obs.get('source')}), network or FUSE storage"))
    if obs.get("rotational") and not obs.get("virtual"):
        out.append(_cause("rotational_storage", f"{key} {path} is on a spinning disk "
                                                f"({obs.get('device')})"))
    return out


def with_evidence(cause: dict[str, str], benchmarks: list[dict[str, Any]],
                  variants: dict[str, Any]) -> dict[str, str]:
    """A storage cause with the measurement that shows it: a benchmark that uses the cache
    and missed its target, and a variant whose cache elsewhere met it."""
    key = next((k for k in ("GOMODCACHE", "GOCACHE", "GOTMPDIR")
                if cause["detail"].startswith(k)), None)
    if cause["cause"] not in STORAGE_EVIDENCE or key is None:
        return cause
    missed = next((b for b in benchmarks if b.get("target_met") is False
                   and key in (b.get("uses") or [])), None)
    if missed is None:
        return cause
    t = (missed.get("tuned") or {}).get("median_s")
    text = f"; measured: {missed['name']} {seconds(t)} (target {seconds(missed['target_s'])})"
    for name, met in (missed.get("targets_met") or {}).items():
        if met and name != "tuned":
            where = explain.place_text((explain.resolve(variants, name).get("places") or {})
                                       .get(key))
            took = (missed.get(name) or {}).get("median_s")
            text += f", {explain.WHO[name]} with {key} on {where}: {seconds(took)}"
            break
    return dict(cause, detail=cause["detail"] + text)


def cpufreq_causes(cpufreq: list[dict[str, Any]]) -> list[dict[str, str]]:
    capped = [c for c in cpufreq
              if c.get("scaling_max_freq", 0) < CPUFREQ_CAP_FRACTION * c.get("cpuinfo_max_freq", 0)]
    if not capped:
        return []
    c = capped[0]
    return [_cause("cpu_frequency_capped",
                   f"{len(capped)} of {len(cpufreq)} CPUs capped: scaling_max_freq "
                   f"{c['scaling_max_freq'] / 1e6:.2f} GHz < cpuinfo_max_freq "
                   f"{c['cpuinfo_max_freq'] / 1e6:.2f} GHz (power profile or thermal limit)")]


def env_causes(user: str, rec: dict[str, Any],
               checks: list[dict[str, Any]]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    login = next((c for c in checks if c["name"] == f"{user}: go env (login shell)"), None)
    nonlogin = next((c for c in checks if c["name"] == f"{user}: go env (non-login shell)"), None)
    if not (rec.get("login") or {}).get("ok"):
        out.append(_cause("go_missing", str((rec.get("login") or {}).get("error"))))
    elif login and nonlogin and not login["ok"] and nonlogin["ok"]:
        out.append(_cause("env_override",
                          f"{user}'s login shell exports Go variables that override the GOENV "
                          f"file: {login['detail']}"))
    elif (login and nonlogin and not login["ok"] and not nonlogin["ok"]
          and (rec.get("non_login") or {}).get("ok")):
        out.append(_cause("not_as_planned",
                          f"{user}'s Go settings differ from the plan in every shell (changed "
                          f"since apply, or apply has not run): {nonlogin['detail']}"))
    return out


def diagnose(raw: dict[str, Any], checks: list[dict[str, Any]],
             benchmarks: list[dict[str, Any]], failed: bool) -> list[dict[str, str]]:
    """The likely causes of a failed host; empty when nothing failed.

    + raw: the runner's observations for the host (``users``, ``cpufreq``)
    + checks: the state checks
    + benchmarks: the benchmark results (``gotune.agent.stats.benchmark_result``)
    + failed: whether any check or benchmark failed
    """
    if not failed:
        return []
    out: list[dict[str, str]] = []
    for user, rec in (raw.get("users") or {}).items():
        out.extend(env_causes(user, rec, checks))
        for key, obs in (rec.get("paths") or {}).items():
            out.extend(storage_causes(user, key, obs))
        bench_text = " ".join(str(b.get("error") or "") for b in benchmarks)
        bench_text += " " + str(rec.get("bench_error") or "")
        lowered = bench_text.lower()
        if "permission denied" in lowered and not any(
                d["cause"] == "permission_denied" for d in out):
            out.append(_cause("permission_denied", f"a build failed: {bench_text.strip()[:200]}"))
        if "no space left" in lowered and not any(
                d["cause"] in ("tmpfs_full", "disk_full") for d in out):
            out.append(_cause("disk_full", f"a build failed: {bench_text.strip()[:200]}"))
    out.extend(cpufreq_causes(raw.get("cpufreq") or []))
    first: dict[str, Any] = next(iter((raw.get("users") or {}).values()), {})
    out = [with_evidence(d, benchmarks, first.get("variants") or {}) for d in out]
    if not out:
        out.append(_cause("unknown", "no cause found in the observed facts; see the failed "
                                     "checks and benchmarks"))
    seen: set[tuple[str, str]] = set()
    unique = []
    for d in out:
        if (d["cause"], d["detail"]) not in seen:
            seen.add((d["cause"], d["detail"]))
            unique.append(d)
    return unique
