"""The wsl component: a WSL2 distro's wsl.conf, the Windows user's .wslconfig, inotify.

Save → apply → verify → undo, side by side:

- plan: ``gotune/plan/wsl.py`` (``[boot] systemd``, ``[automount] options`` with
  ``metadata``, ``[interop] appendWindowsPath`` when measured faster; ``[wsl2] memory``
  and ``processors`` from the Windows host, ``[experimental] autoMemoryReclaim``;
  inotify's limit; GOPATH off /mnt, which the GOENV deploy writes)
- apply: here, with ``operations/wsl.py`` — each file's keys merged into what the user
  has (the merge is parsed back before anything is written), written beside the file
  and renamed over it; ``/run/gotune/wsl-restart-needed`` then says WSL must restart
  (``wsl --shutdown`` from Windows; ``windows/gotune-wsl.ps1`` offers it). The figures
  that set appendWindowsPath go to ``/var/lib/gotune/wsl.json``; inotify's limit is
  raised now and in ``/etc/sysctl.d`` (``templates/wsl-sysctl.conf.j2``)
- verify: ``gotune/verify/checks/wsl.py`` (both files parse and hold the planned keys,
  no Go path on /mnt, the inotify limit, whether a restart is pending)
- save/undo: every file is recorded first (``operations/state.py``); undo puts
  wsl.conf and .wslconfig back byte for byte and notes the restart again. A raised
  inotify limit stays until WSL restarts.

Idempotent: a second run changes nothing. Alone: ``pyinfra INVENTORY deploys/wsl.py``.
"""

from __future__ import annotations

import json

from pyinfra import host
from pyinfra.api import deploy

from gotune.agent.paths import WSL_RECORD
from gotune.operations import state, wsl
from gotune.plan.model import HostPlan, WslConfig
from gotune.plan.wsl import APPEND_PATH


def _write(d: WslConfig) -> None:
    if d.refused or not d.change or not d.value:
        host.noop(f"{d.key}: {d.reason}")
        return
    changed = [k for k, v in d.keys.items() if d.was.get(k) != v] or ["line ends"]
    wsl.config_file(
        name=f"{d.key}: {', '.join(changed)} (after `{d.restart}`)", path=d.value,
        keys=dict(d.keys), quoted=list(d.quoted), newline=d.newline,
        default_newline=d.default_newline, keep_bom=d.keep_bom, owner_uid=d.owner_uid,
    )  # fmt: skip


@deploy("gotune WSL2")
def deploy_wsl(hp: HostPlan) -> None:
    """Merge the planned keys into wsl.conf and .wslconfig; raise inotify's limit."""
    plan = hp.plan.wsl
    if plan is None:
        host.noop("not a WSL2 distro")
        return
    _write(plan.conf)
    if plan.wslconfig is not None:
        _write(plan.wslconfig)
    conf = plan.conf
    if conf.change and conf.measured and conf.keys.get(APPEND_PATH) == "false":
        state.file(
            name=f"Record what decided appendWindowsPath ({WSL_RECORD})", path=WSL_RECORD,
            content=json.dumps(conf.measured, indent=1, sort_keys=True) + "\n", mode=0o644,
        )  # fmt: skip
    d = plan.inotify
    if d.change and d.value:
        state.file(name=f"{d.key} = {d.value} at boot ({d.path})", path=d.path,
                   content=wsl.sysctl_snippet(d.key, int(d.value)), mode=0o644)
        wsl.kernel_value(name=f"{d.key} = {d.value} now", key=d.key, value=int(d.value))
    else:
        host.noop(f"{d.key}: {d.reason}")


# `pyinfra INVENTORY deploys/wsl.py` executes this file (not as an import).
if __name__ != "gotune.deploys.wsl":
    from gotune.deploys.host import current_host_plan

    deploy_wsl(hp=current_host_plan())
