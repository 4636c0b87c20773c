"""A sandbox host that poses as a WSL2 distro on a Windows PC: ``Sandbox(wsl=Wsl2())``.

What the host shows, and where it comes from:

- its kernel: ``/proc/sys/kernel/osrelease`` and ``/proc/version`` say
  ``...-microsoft-standard-WSL2`` (files of this machine bound over them in the host's
  namespace; ``uname`` still shows the real kernel, gotune reads the files);
- its session: sshd's ``SetEnv`` gives every login ``WSL_DISTRO_NAME``, ``WSL_INTEROP``
  and a ``PATH`` with the Windows folders WSL appends (``appendWindowsPath``), spaces
  and all;
- Windows' drive: ``/mnt/c`` is the ``slow9p`` storage profile (a 9p-like FUSE mount,
  ``tests/sandbox_storage.py``) holding ``Users/<name>/`` (and its ``.wslconfig``),
  ``Windows/System32`` and the folders on that PATH;
- Windows' programs: ``cmd.exe``, ``powershell.exe`` and ``wsl.exe`` under
  ``/mnt/c/Windows/System32`` and ``wslpath`` in ``/usr/bin`` are STAND-INS FOR
  WINDOWS, which cannot run here: small shell scripts that answer what gotune asks
  (``cmd.exe /d /c echo %USERPROFILE%``, PowerShell's Win32_ComputerSystem, ``wslpath
  -u``) the way a real Windows host would, CRLF line ends included;
- inotify's limit: ``/proc/sys/fs/inotify/max_user_watches`` is a file of this machine
  bound over the real one, so a write from the host changes the file, not this kernel.

``Wsl2(interop=False)`` is WSL with interop off and no drive mounted: no /mnt/c, no
Windows programs. Plain hosts only (not ``systemd=True``).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from tests.sandbox_storage import Slow9p, Storage

# A WSL2 kernel release (the Store WSL's, late 2024).
WSL_KERNEL = "5.15.167.4-microsoft-standard-WSL2"
# What a Store WSL's init puts in every session's environment.
INTEROP_SOCKET = "/run/WSL/1_interop"
LINUX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Folders of a developer's Windows PATH, below C:\ (with {user} the Windows user).
WINDOWS_PATH = (
    "Windows/System32",
    "Windows",
    "Windows/System32/Wbem",
    "Windows/System32/WindowsPowerShell/v1.0",
    "Windows/System32/OpenSSH",
    "Program Files/Git/cmd",
    "Program Files/Go/bin",
    "Program Files/Docker/Docker/resources/bin",
    "Users/{user}/AppData/Local/Microsoft/WindowsApps",
    "Users/{user}/AppData/Local/Programs/Microsoft VS Code/bin",
    "Users/{user}/go/bin",
)
LABEL = ("# STAND-IN FOR WINDOWS in gotune's WSL2 test sandbox (tests/sandbox_wsl.py):\n"
         "# Windows cannot run here. This answers what gotune asks, as Windows would.\n")


@dataclass(frozen=True)
class Wsl2:
    """The WSL2 distro a sandbox host poses as, and the Windows PC under it.

    + windows_user: the Windows account (its profile is C:\\Users\\<windows_user>)
    + memory_gib, cpus: the Windows host's RAM and logical processors
    + interop: Windows' programs run and C: is mounted at /mnt/c (False: neither)
    + latency_ms: each metadata operation on /mnt/c (9p)
    + wslconfig: the .wslconfig's bytes to start with (None: there is none)
    + wsl_conf: /etc/wsl.conf's bytes to start with (None: there is none)
    + max_user_watches: fs.inotify.max_user_watches as the distro's kernel says
    """

    windows_user: str = "Dev User"
    memory_gib: int = 32
    cpus: int = 16
    interop: bool = True
    latency_ms: float = 0.5
    wslconfig: bytes | None = None
    wsl_conf: bytes | None = None
    max_user_watches: int = 8192
    distro: str = "Debian"

    @property
    def profile(self) -> str:
        """The profile as WSL shows it: /mnt/c/Users/<windows_user>."""
        return f"/mnt/c/Users/{self.windows_user}"

    @property
    def windows_profile(self) -> str:
        return f"C:\\Users\\{self.windows_user}"

    def windows_path(self) -> list[str]:
        """The Windows folders WSL appends to PATH, as Linux paths."""
        return [f"/mnt/c/{p.format(user=self.windows_user)}" for p in WINDOWS_PATH]

    def session_path(self) -> str:
        return ":".join([LINUX_PATH, *(self.windows_path() if self.interop else [])])


def storage_for(spec: Wsl2, storage: list[Storage]) -> list[Storage]:
    """The host's storage with Windows' C: drive at /mnt/c (when interop is on)."""
    if not spec.interop or any(isinstance(s, Slow9p) and s.path == "/mnt/c" for s in storage):
        return storage
    return [*storage, Slow9p(path="/mnt/c", latency_ms=spec.latency_ms)]


def sshd_lines(spec: Wsl2) -> list[str]:
    """sshd_config lines that give every session WSL's environment."""
    env = [f"WSL_DISTRO_NAME={spec.distro}", f"PATH={spec.session_path()}"]
    if spec.interop:
        env.append(f"WSL_INTEROP={INTEROP_SOCKET}")
    return ["SetEnv " + " ".join(f'"{e}"' for e in env)]


def _write(path: Path, data: bytes | str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)


def populate_upper(upper: Path, spec: Wsl2) -> None:
    """The distro's own files: wslpath (Linux side of WSL) and /etc/wsl.conf."""
    _write(upper / "usr/bin/wslpath", WSLPATH, 0o755)
    if spec.wsl_conf is not None:
        _write(upper / "etc/wsl.conf", spec.wsl_conf, 0o644)


def populate_windows(backing: Path, spec: Wsl2) -> None:
    """C:\\ as /mnt/c shows it: the profile, Windows' programs, the PATH folders.

    + backing: the directory the slow9p mount at /mnt/c passes through
    """
    for folder in spec.windows_path():
        (backing / folder.removeprefix("/mnt/c/")).mkdir(parents=True, exist_ok=True)
    profile = backing / "Users" / spec.windows_user
    profile.mkdir(parents=True, exist_ok=True)
    system32 = backing / "Windows" / "System32"
    _write(system32 / "cmd.exe", CMD.replace("@PROFILE@", spec.windows_profile), 0o755)
    _write(system32 / "wsl.exe", WSL_EXE, 0o755)
    _write(system32 / "WindowsPowerShell/v1.0/powershell.exe",
           POWERSHELL.replace("@MEMORY@", str(spec.memory_gib * 1024**3 - 2**28))
           .replace("@CPUS@", str(spec.cpus)), 0o755)  # fmt: skip
    if spec.wslconfig is not None:
        _write(profile / ".wslconfig", spec.wslconfig, 0o644)
    for d in [backing, *backing.rglob("*")]:  # drvfs shows every folder open to all
        if d.is_dir():
            os.chmod(d, 0o777)


def proc_lines(spec: Wsl2, host_dir: Path, root: Path) -> list[str]:
    """Start-script lines that lay the WSL kernel's files over the host's /proc."""
    proc = host_dir / "wsl-proc"
    proc.mkdir(exist_ok=True)
    files = {
        "kernel/osrelease": f"{WSL_KERNEL}\n",
        "version": f"Linux version {WSL_KERNEL} (root@1c602f52c2e4) (gcc (GCC) 11.2.0, GNU "
                   "ld (GNU Binutils) 2.37) #1 SMP Tue Nov 5 00:21:55 UTC 2024\n",
        "fs/inotify/max_user_watches": f"{spec.max_user_watches}\n",
    }
    lines = []
    for rel, text in files.items():
        source = proc / rel.replace("/", "-")
        _write(source, text, 0o644)
        inside = f"/proc/{rel}" if rel == "version" else f"/proc/sys/{rel}"
        lines.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(str(root) + inside)}")
    return lines


# --- the stand-ins for Windows --------------------------------------------------------------

def _script(body: str, label: str = LABEL) -> str:
    return "#!/bin/sh\n" + label + body.lstrip("\n")


CMD = _script(r"""
# cmd.exe: only `cmd.exe /d /c echo %USERPROFILE%`.
while [ $# -gt 0 ]; do case $1 in /d|/D) shift;; /c|/C) shift; break;; *) break;; esac; done
case "$*" in
  'echo %USERPROFILE%') printf '%s\r\n' '@PROFILE@';;
  *) printf 'stand-in cmd.exe cannot run: %s\r\n' "$*" >&2; exit 1;;
esac
""")

POWERSHELL = _script(r"""
# powershell.exe: only Win32_ComputerSystem's memory and logical processors.
case "$*" in
  *Win32_ComputerSystem*) printf 'memory=@MEMORY@\r\ncpus=@CPUS@\r\n';;
  *) printf 'stand-in powershell.exe cannot run: %s\r\n' "$*" >&2; exit 1;;
esac
""")

WSL_EXE = _script(r"""
# wsl.exe: --version and --status answer; --shutdown would stop every distro (this one
# too), so it only says so.
case $1 in
  --version|-v) printf 'WSL version: 2.3.26.0\r\nKernel version: 5.15.167.4-1\r\n';;
  --status) printf 'Default Distribution: Debian\r\nDefault Version: 2\r\n';;
  --shutdown) printf 'stand-in wsl.exe: --shutdown would restart WSL here\r\n';;
  *) printf 'stand-in wsl.exe cannot run: %s\r\n' "$*" >&2; exit 1;;
esac
""")

WSLPATH = _script(r"""
# wslpath: -u (Windows to Linux, C:\X -> /mnt/c/X) and -w (back); -a is accepted.
mode=-u; bs='\134'  # tr's octal for a backslash
while [ $# -gt 1 ]; do case $1 in -u|-w|-m) mode=$1; shift;; -a) shift;; *) break;; esac; done
p=$1
case $mode in
  -u) case $p in
        [A-Za-z]:\\*|[A-Za-z]:) d=$(printf '%s' "${p%%:*}" | tr '[:upper:]' '[:lower:]')
          rest=$(printf '%s' "${p#?:}" | tr "$bs" /); printf '/mnt/%s%s\n' "$d" "$rest";;
        *) echo "wslpath: $p: not a Windows path" >&2; exit 1;;
      esac;;
  *) case $p in
       /mnt/[a-z]|/mnt/[a-z]/*) d=$(printf '%s' "${p#/mnt/}" | cut -c1 | tr '[:lower:]' '[:upper:]')
         rest=${p#/mnt/?}; sep=$bs; [ "$mode" = -m ] && sep=/
         printf '%s:%s\n' "$d" "$(printf '%s' "$rest" | tr / "$sep")";;
       *) echo "wslpath: $p: not on a Windows drive" >&2; exit 1;;
     esac;;
esac
""", LABEL.replace("Windows cannot", "WSL's /init cannot"))
