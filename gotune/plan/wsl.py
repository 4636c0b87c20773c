"""What a WSL2 distro needs for Go: wsl.conf, .wslconfig, inotify, no Go paths on /mnt.

Pure rules over ``facts.wsl`` (``facts/wsl.py``):

- ``/etc/wsl.conf``: ``[boot] systemd=true`` (gotune's tmpfs snapshot, mirror and wear
  units run as on a laptop, not from cron), ``[automount] options`` with ``metadata``
  (chmod and chown work on /mnt/c), and ``[interop] appendWindowsPath=false`` only when
  the facts measured the Windows PATH entries slowing a lookup that misses (verify's
  A/B rule, ``gotune.agent.stats``). Merged into the user's file: their keys stay.
- ``%USERPROFILE%\\.wslconfig``: ``[wsl2] memory`` and ``processors`` sized from the
  Windows host (``memory_for``), ``[experimental] autoMemoryReclaim=gradual``; never
  ``sparseVhd`` (disabled upstream for data corruption since WSL 2.5.8, microsoft/WSL#13075).
- ``fs.inotify.max_user_watches`` raised for gopls and VS Code.
- GOPATH moved off /mnt (the caches component does the same for GOMODCACHE, GOCACHE and
  GOTMPDIR); Go modules found on /mnt get a warning with the measured cost.
- Defender: advice only; gotune cannot change it from Linux.

Both files take effect only after ``wsl --shutdown`` (``WSL_RESTART``): the decisions
say so, and so does one warning listing what waits for it.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

from gotune.agent.paths import WSL_CONF, WSL_SYSCTL_FILE
from gotune.agent.stats import FASTER, replicated_verdict
from gotune.agent.wslconf import Config, parse
from gotune.facts.model import Facts, Wsl, WslConfigFile
from gotune.plan.model import (
    DEFENDER_KEY,
    INOTIFY_KEY,
    WSL_RESTART,
    Decision,
    WslConfig,
    WslGopath,
    WslPlan,
    WslSysctl,
)
from gotune.settings import Settings

GIB = 1024**3
# [wsl2] memory leaves Windows a quarter of its RAM: the editor's window (VS Code's UI
# stays on Windows with the WSL extension), the browser and Defender run there ...
WINDOWS_SHARE = 0.25
# ... and never less than 4 GiB, below which Windows 11 itself pages.
WINDOWS_MIN_GIB = 4
# WSL's own default is half of Windows' RAM: gotune writes memory only to give more.
WSL_DEFAULT_SHARE = 0.5
# gopls and VS Code put an inotify watch on every folder of a workspace; a module cache
# and a monorepo pass the 8192 of older kernels. 524288 is what VS Code's docs ask for.
INOTIFY_WATCHES = 524288
# The keys gotune sets, as written (WSL matches them in any case).
SYSTEMD = "boot.systemd"
AUTOMOUNT_OPTIONS = "automount.options"
APPEND_PATH = "interop.appendWindowsPath"
MEMORY = "wsl2.memory"
PROCESSORS = "wsl2.processors"
RECLAIM = "experimental.autoMemoryReclaim"
SPARSE_VHD = "experimental.sparseVhd"
# chmod, chown and the executable bit work on /mnt/c (git and go keep file modes).
METADATA = "metadata"
# Gradual: the VM gives Windows back memory the page cache held after a build.
RECLAIM_MODE = "gradual"
# Values WSL reads as a boolean (wsl::shared::string::ParseBool).
TRUE_WORDS = ("true", "1")
FALSE_WORDS = ("false", "0")
DEFENDER_ADVICE = (
    "Windows Defender cannot be changed from inside WSL. Builds in the distro's own ext4 "
    "disk are not scanned file by file; a Go build on the Windows side (go.exe) is, and a "
    "process exclusion for go.exe and its tool folder helped where folder exclusions did "
    "not (golang/go#43427, wailsapp/wails#2545): windows\\gotune-wsl.ps1 "
    "-DefenderExclusions adds them (needs an elevated PowerShell)"
)


def memory_for(windows_bytes: int) -> int:
    """GiB for ``[wsl2] memory``: Windows keeps ``WINDOWS_SHARE``, at least ``WINDOWS_MIN_GIB``."""
    total = round(windows_bytes / GIB)  # CIM reports a little under the installed size
    return max(1, min(int(total * (1 - WINDOWS_SHARE)), total - WINDOWS_MIN_GIB))


def parse_bool(value: str | None) -> bool | None:
    """A value as WSL reads a boolean; None when unset or unreadable."""
    word = (value or "").strip().lower()
    return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None


def _spelled(have: dict[str, str], key: str, want: bool) -> str:
    """``key``'s value as the file already spells it when it reads as ``want`` (``1``
    stays ``1``), else ``true``/``false``."""
    now = have.get(key.lower())
    return str(now) if parse_bool(now) is want else ("true" if want else "false")


def _gib(text: str | None) -> float | None:
    """A memory size as WSL reads it (``8GB``, ``4096MB``) in GiB; None when not one."""
    word = (text or "").strip().upper().removesuffix("B")
    scale = {"K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}
    try:
        return float(word[:-1]) * scale[word[-1]] if word and word[-1] in scale else (
            float(word) / GIB)
    except ValueError:
        return None


def _readable(key: str, f: WslConfigFile, used: list[str]) -> Config | WslConfig:
    """The parsed file, or the decision that leaves it alone, saying why."""
    conf = parse(f.text or "") if not f.error else None
    if conf is not None and not conf.problems:
        return conf
    why = (f"{f.path} {conf.problems[0]}: WSL skips such lines (an older WSL ignored the "
           "whole file); fix it, then apply again" if conf is not None else
           f"{f.path} cannot be read ({f.error})")
    return _refused(key, f.path, why, used, f.exists)


def _restart_note(restart: str | None) -> str:
    return f"; takes effect after `{restart}` (from Windows)" if restart else ""


def _file_decision(
    key: str, f: WslConfigFile, conf: Config | None, wanted: dict[str, str], why: list[str],
    used: list[str], **extra: object,
) -> WslConfig:
    """The decision for one file: the keys that differ from what WSL reads today."""
    have = conf.values() if conf else {}
    was = {k: have.get(k.lower()) for k in wanted}
    differ = {k: v for k, v in wanted.items() if was[k] != v}
    restart = WSL_RESTART if differ else None
    shown = ", ".join(f"{k}={v}" for k, v in wanted.items()) or "nothing"
    changes = "; ".join(f"{k}: {was[k] if was[k] is not None else '(unset)'} -> {v}"
                        for k, v in differ.items())  # fmt: skip
    reason = "; ".join([f"{shown}{(' (' + changes + ')') if changes else ' (already set)'}",
                        *why]) + _restart_note(restart)  # fmt: skip
    return WslConfig(
        key=key, value=f.path, medium="file", reason=reason, facts_used=used,
        change=bool(differ), current=f.path if f.exists else None, keys=dict(wanted),
        was=was, restart=restart, **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def _refused(key: str, path: str, why: str, used: list[str], exists: bool) -> WslConfig:
    return WslConfig(key=key, value=path, medium="file", reason=f"left alone: {why}",
                     facts_used=used, current=path if exists else None, refused=why)


def _left_alone(
    key: str, path: str, why: str, used: list[str], exists: bool
) -> tuple[WslConfig, list[str]]:
    """The decision that leaves a file alone, and the warning that says why."""
    return _refused(key, path, why, used, exists), [why]


def append_path_decision(
    wsl: Wsl, have: dict[str, str]
) -> tuple[str | None, str, dict[str, Any] | None]:
    """(``appendWindowsPath`` value wanted or None to leave it, why, the figures).

    The Windows PATH entries cost every lookup that misses (a shell's command-not-found,
    completion, ``exec.LookPath``) one 9p round trip each; the facts timed lookups with
    and without them, and only a difference verify's A/B rule calls faster counts.
    """
    now = have.get(APPEND_PATH.lower())
    on = parse_bool(now)
    if on is False:
        past = wsl.recorded or {}
        before = (f" (gotune measured {past.get('with_ms')} ms per lookup with them, "
                  f"{past.get('without_ms')} ms without)") if past.get("with_ms") else ""
        why = f"appendWindowsPath is already false{before}"
        return _spelled(have, APPEND_PATH, False), why, None
    with_s, without_s = wsl.lookup_with_s, wsl.lookup_without_s
    entries = len(wsl.windows_path_entries)
    if not with_s or not without_s:
        why = ("this session's PATH holds no Windows folders (over SSH or under sudo WSL "
               "adds none)" if not entries else "the lookups could not be timed")
        return None, f"appendWindowsPath not measured: {why}; left as it is", None
    split = min(len(with_s), len(without_s)) // 2 or None
    verdict = replicated_verdict(without_s, with_s, split)
    w, wo = statistics.median(with_s) * 1e3, statistics.median(without_s) * 1e3
    figures = {"with_ms": round(w, 3), "without_ms": round(wo, 3), "entries": entries,
               "runs": min(len(with_s), len(without_s)), "verdict": verdict,
               "ratio": round(w / wo, 2) if wo > 0 else None}  # fmt: skip
    measured = (f"a lookup that misses took {w:.2f} ms with the {entries} Windows PATH "
                f"entries and {wo:.2f} ms without ({verdict}, {figures['runs']} interleaved "
                "runs each)")
    if verdict != FASTER:
        return None, f"appendWindowsPath stays: {measured}", figures
    if on is True:
        return None, (f"appendWindowsPath=true is your choice, kept, though {measured}"), figures
    return "false", (f"appendWindowsPath=false: {measured}; Windows programs (code, "
                     "explorer.exe, cmd.exe) then need their full /mnt/c path"), figures


def plan_conf(facts: Facts, wsl: Wsl) -> tuple[WslConfig, list[str]]:
    """``/etc/wsl.conf``: systemd, metadata on Windows' drives, maybe no Windows PATH."""
    f = wsl.conf
    used = [f"wsl.conf exists={f.exists} owner_uid={f.owner_uid}",
            f"platform.systemd={facts.platform.systemd}",
            f"wsl.windows_path_entries={len(wsl.windows_path_entries)}"]  # fmt: skip
    if f.exists and f.owner_uid not in (0, None):
        return _left_alone("wsl.conf", f.path, f"{WSL_CONF} belongs to uid {f.owner_uid}, not "
                           f"root; gotune changes only root's files there (`chown root: "
                           f"{WSL_CONF}`, then apply again)", used, True)  # fmt: skip
    if f.exists and f.owner_uid is None:
        return _left_alone("wsl.conf", f.path, f"the owner of {WSL_CONF} is unknown", used, True)
    conf = _readable("wsl.conf", f, used)
    if isinstance(conf, WslConfig):
        return conf, [str(conf.refused)]
    have = conf.values()
    wanted = {SYSTEMD: _spelled(have, SYSTEMD, True)}
    options = [o.strip() for o in (have.get(AUTOMOUNT_OPTIONS.lower()) or "").split(",")
               if o.strip()]  # fmt: skip
    if METADATA not in options:
        options.insert(0, METADATA)
    wanted[AUTOMOUNT_OPTIONS] = ",".join(options)
    why = ["systemd runs gotune's units (tmpfs snapshot, mirror, wear) as on a laptop",
           "metadata: chmod and the executable bit work on /mnt/c"]  # fmt: skip
    if parse_bool(have.get(SYSTEMD.lower())) and not facts.platform.systemd:
        why.append("systemd is set but not running: WSL has not restarted since")
    value, path_why, figures = append_path_decision(wsl, have)
    if value is not None:
        wanted[APPEND_PATH] = value
    why.append(path_why)
    for name, lines in conf.duplicates().items():
        why.append(f"{name} is set on lines {', '.join(map(str, lines))}: WSL reads the first")
    text = f.text or ""
    if text.startswith("\ufeff"):
        why.append("its byte order mark goes: WSL's init reads wsl.conf byte by byte")
    if "\r" in text:
        why.append("written with LF line ends: a WSL from before 2022 ignored a wsl.conf "
                   "with CRLF (microsoft/WSL#8002)")
    d = _file_decision("wsl.conf", f, conf, wanted, why, used, quoted=[AUTOMOUNT_OPTIONS],
                       newline="\n", keep_bom=False, owner_uid=0, measured=figures)
    if not d.change and ("\r" in text or text.startswith("\ufeff")):
        d = _with_change(d)
    return d, []


def _with_change(d: WslConfig) -> WslConfig:
    """``d`` as a change that rewrites only line ends and the byte order mark."""
    return dataclasses.replace(d, change=True, restart=WSL_RESTART,
                               reason=d.reason + _restart_note(WSL_RESTART))


def plan_wslconfig(wsl: Wsl, settings: Settings) -> tuple[WslConfig | None, list[str]]:
    """``%USERPROFILE%\\.wslconfig``: memory, processors and memory reclaim for Go builds."""
    if not settings.wsl_wslconfig:
        return None, []
    used = [f"wsl.windows_profile={wsl.windows_profile} ({wsl.profile_source})",
            f"wsl.windows_memory_bytes={wsl.windows_memory_bytes}",
            f"wsl.windows_cpus={wsl.windows_cpus}"]  # fmt: skip
    f = wsl.wslconfig
    if wsl.windows_profile is None or f is None:
        return _left_alone(".wslconfig", "%USERPROFILE%\\.wslconfig", "the Windows profile is "
                           f"unknown ({wsl.windows_error or 'not found'}): set "
                           "gotune_wsl_windows_profile (e.g. /mnt/c/Users/NAME) to size "
                           ".wslconfig", used, False)  # fmt: skip
    if not f.exists and not wsl.windows_profile_exists:
        return _left_alone(".wslconfig", f.path, f"the Windows profile {wsl.windows_profile} "
                           "is not there (is /mnt/c mounted?)", used, False)  # fmt: skip
    conf = _readable(".wslconfig", f, used)
    if isinstance(conf, WslConfig):
        return conf, [str(conf.refused)]
    have = conf.values()
    wanted: dict[str, str] = {}
    why: list[str] = []
    warnings: list[str] = []
    if wsl.windows_memory_bytes:
        total = wsl.windows_memory_bytes / GIB
        gib = memory_for(wsl.windows_memory_bytes)
        now = _gib(have.get(MEMORY.lower()))
        if gib > (now if now is not None else total * WSL_DEFAULT_SHARE):
            wanted[MEMORY] = f"{gib}GB"
            why.append(f"memory: {gib} of Windows' {total:.0f} GiB (Windows keeps "
                       f"{WINDOWS_SHARE:.0%}, at least {WINDOWS_MIN_GIB} GiB); go build "
                       "links and gopls hold whole programs in memory")
        elif now is not None:
            why.append(f"memory: your {have.get(MEMORY.lower())} is at least the {gib}GB gotune "
                       "would give: kept")
        else:
            why.append(f"memory: WSL's default, half of Windows' {total:.0f} GiB, is "
                       "already what Windows can spare")
    if wsl.windows_cpus:
        now_cpus = have.get(PROCESSORS.lower())
        if now_cpus is not None and now_cpus.strip().isdigit() and (
                int(now_cpus) < wsl.windows_cpus):
            wanted[PROCESSORS] = str(wsl.windows_cpus)
        why.append(f"processors: all {wsl.windows_cpus} logical processors (WSL's default): "
                   "go build compiles one package per processor")
    if not wsl.windows_memory_bytes or not wsl.windows_cpus:
        why.append(f"Windows' RAM and processors unknown ({wsl.windows_error}): "
                   "memory and processors left as they are")
    wanted[RECLAIM] = RECLAIM_MODE
    why.append("autoMemoryReclaim=gradual: memory a build's page cache held goes back "
               "to Windows")
    if parse_bool(have.get(SPARSE_VHD.lower())):
        warnings.append(f"{f.path} sets sparseVhd=true: WSL disabled sparse VHDs for data "
                        "corruption (since 2.5.8, microsoft/WSL#13075); gotune never sets it")
    for name, lines in conf.duplicates().items():
        why.append(f"{name} is set on lines {', '.join(map(str, lines))}: WSL reads the first")
    used.append(f".wslconfig exists={f.exists} encoding={f.encoding}")
    # A new .wslconfig gets Windows' line ends (Notepad before 2018 shows no others).
    return _file_decision(".wslconfig", f, conf, wanted, why, used,
                          default_newline="\r\n"), warnings  # fmt: skip


def plan_inotify(wsl: Wsl) -> WslSysctl:
    """``fs.inotify.max_user_watches`` raised when below ``INOTIFY_WATCHES``."""
    now = wsl.max_user_watches
    used = [f"fs.inotify.max_user_watches={now}"]
    if now is None:
        return WslSysctl(key=INOTIFY_KEY, value=None, medium="sysctl", facts_used=used,
                         reason="its value is unknown: left alone", path=WSL_SYSCTL_FILE)
    if now >= INOTIFY_WATCHES:
        return WslSysctl(key=INOTIFY_KEY, value=str(now), medium="sysctl", facts_used=used,
                         current=str(now), reason=f"{now} watches: enough for gopls and "
                         "VS Code", path=WSL_SYSCTL_FILE)  # fmt: skip
    return WslSysctl(
        key=INOTIFY_KEY, value=str(INOTIFY_WATCHES), medium="sysctl", facts_used=used,
        change=True, current=str(now), path=WSL_SYSCTL_FILE,
        reason=f"{now} inotify watches run out in a large workspace (gopls, VS Code watch "
        f"every folder): {INOTIFY_WATCHES} now and at every boot ({WSL_SYSCTL_FILE})",
    )  # fmt: skip


def on_windows_drive(path: str | None) -> bool:
    """Whether a path lies on one of Windows' drives as WSL mounts them (/mnt/c ...)."""
    return bool(path) and len(str(path)) >= 6 and str(path)[:5] == "/mnt/" and (
        str(path)[5].isalpha() and (len(str(path)) == 6 or str(path)[6] == "/"))


def plan_gopath(facts: Facts) -> tuple[dict[str, WslGopath], list[str]]:
    """Each developer's GOPATH off Windows' drives: Go's default ``~/go`` in GOENV."""
    out: dict[str, WslGopath] = {}
    warnings: list[str] = []
    for name, uf in facts.users.items():
        gopath = uf.setting("GOPATH")
        entries = [p for p in (gopath or "").split(":") if p]
        if not uf.user.home or not any(on_windows_drive(p) for p in entries):
            continue
        want = f"{uf.user.home}/go"
        out[name] = WslGopath(
            key="GOPATH", value=want, medium="file", user=name, change=True, current=gopath,
            reason=f"GOPATH {gopath} is on a Windows drive (9p): go install, go run and "
            f"gopls read it file by file; {want} is Go's default, in the Linux home",
            facts_used=[f"go env GOPATH={gopath}"],
        )  # fmt: skip
        goenv = uf.goenv.values.get("GOPATH") if uf.goenv else None
        if goenv != gopath:
            warnings.append(f"{name}: GOPATH={gopath} comes from the environment (a shell "
                            "export), which overrides the GOENV file: change it there too")
    return out, warnings


def project_warnings(wsl: Wsl, settings: Settings) -> list[str]:
    """A warning per Go module on a Windows drive, with the measured cost of a lookup there."""
    costs = {c.mount: c for c in wsl.drive_costs}
    found: list[tuple[str | None, str, str]] = [(p.user, p.path, p.source) for p in wsl.projects]
    found += [(None, d, "gotune_wsl_project_dirs") for d in settings.wsl_project_dirs
              if on_windows_drive(d)]  # fmt: skip
    out = []
    for user, path, source in found:
        drive = path[:6]
        cost = costs.get(drive)
        measured = "its cost was not measured"
        if cost is not None and cost.root_op_ms > 0:
            measured = (f"a file lookup there took {cost.op_ms:.3f} ms against "
                        f"{cost.root_op_ms:.4f} ms on / ({cost.op_ms / cost.root_op_ms:.0f}x, "
                        f"{cost.ops} lookups each)")
        who = f"{user}: " if user else ""
        out.append(f"{who}Go module {path} ({source}) is on {drive}, a Windows drive over 9p: "
                   f"{measured}; go build and gopls look up every file of it on each run. "
                   "Move it into the Linux home and open it with VS Code's WSL extension")
    return out


def _changed_keys(d: WslConfig) -> str:
    keys = [k for k, v in d.keys.items() if d.was.get(k) != v]
    return ", ".join(keys) or "line ends"


def plan_wsl(facts: Facts, settings: Settings) -> tuple[WslPlan | None, list[str]]:
    """The wsl component's decisions on a WSL2 distro (None elsewhere) and its warnings.

    + facts: the host's facts (``facts.wsl`` is filled on WSL2 only)
    + settings: the host's validated settings (``gotune_wsl_*``)
    """
    wsl = facts.wsl
    if wsl is None or facts.platform.virtualization != "wsl2":
        return None, []
    warnings: list[str] = []
    gopath, found = plan_gopath(facts)
    warnings += found
    warnings += project_warnings(wsl, settings)
    defender = Decision(key=DEFENDER_KEY, value=None, medium="advice", reason=DEFENDER_ADVICE,
                        facts_used=["platform.virtualization=wsl2"])  # fmt: skip
    if not settings.wsl_enabled:
        why = "gotune_wsl_enabled is false"
        conf = _refused("wsl.conf", wsl.conf.path, why, [], wsl.conf.exists)
        inotify = WslSysctl(key=INOTIFY_KEY, value=None, medium="sysctl", reason=f"left "
                            f"alone: {why}", path=WSL_SYSCTL_FILE)  # fmt: skip
        return WslPlan(conf, None, inotify, defender, gopath), warnings
    conf, found = plan_conf(facts, wsl)
    warnings += found
    wslconfig, found = plan_wslconfig(wsl, settings)
    warnings += found
    plan = WslPlan(conf, wslconfig, plan_inotify(wsl), defender, gopath)
    waiting = plan.restart_needed
    if waiting:
        names = "; ".join(f"{d.value} ({_changed_keys(d)})" for d in waiting)
        warnings.append(f"`{WSL_RESTART}` from Windows (it stops every distro) is needed "
                        f"before these take effect: {names}")
    elif wsl.restart_pending:
        warnings.append(f"an earlier apply changed wsl.conf or .wslconfig and WSL has not "
                        f"restarted since: run `{WSL_RESTART}` from Windows")
    return plan, warnings
