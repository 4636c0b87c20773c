"""The Debian root filesystem systemd sandbox hosts boot: built once, cached, never changed.

``debootstrap --variant=minbase`` of Debian 12 with systemd, sshd, python3 and
what gotune's deploys run on a host (numactl, smartctl, tar ...), so no test
needs the network. Its directory under ``CACHE_DIR`` is named by a hash of
everything that decides its content (suite, variant, packages, the finishing
steps' version): change the package list and the next run builds a new one.

A build runs under a file lock into ``.build-*`` and is renamed into place only
when complete, so an interrupted build is never booted (the next builder removes
its leftovers). Hosts boot it read-only as the lower layer of an overlay.

    python -m tests.sandbox_rootfs          # build when missing (scripts/test does)
    python -m tests.sandbox_rootfs --path   # print where it is, or exit 1
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.sandbox_mounts import SSH_DIR_INSIDE

CACHE_DIR = Path(os.environ.get("GOTUNE_SANDBOX_CACHE", "/var/cache/gotune-sandbox"))
SUITE = "bookworm"
VARIANT = "minbase"
MIRROR = os.environ.get("GOTUNE_SANDBOX_MIRROR", "http://deb.debian.org/debian")
# systemd as PID 1 and its bus; sshd for pyinfra; python3 for gotune's agent and
# verify runner; the rest is what gotune's deploys and facts run on a host
# (smartctl: the wear deploy installs smartmontools from the network otherwise).
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "iproute2", "procps",
    "util-linux", "ca-certificates", "numactl", "tar", "gzip", "smartmontools", "e2fsprogs",
    "passwd", "findutils",
)  # fmt: skip
# Bump when finish() changes what it does: the hash then names a new rootfs.
FINISH_VERSION = 1
# debootstrap takes 1.5 minutes here; a stuck mirror must not hang the test run.
BUILD_TIMEOUT = 900.0
COMPLETE = ".gotune-rootfs.json"

# The sshd every host runs: its own address and keys in SSH_DIR_INSIDE (from the
# host's own layer), never Debian's ssh.service on *:22 of the shared network.
SSHD_UNIT = f"""[Unit]
Description=sandbox sshd (gotune tests)
After=network.target

[Service]
ExecStartPre=/bin/mkdir -p /run/sshd
ExecStart=/usr/sbin/sshd -D -e -f {SSH_DIR_INSIDE}/sshd_config
Restart=always

[Install]
WantedBy=multi-user.target
"""
# Not gotune-*: `systemctl list-units 'gotune*'` must show gotune's units only.
SSHD_UNIT_NAME = "sandbox-sshd.service"
# Units that make no sense in a container on a shared network (or without disks).
DISABLED_UNITS = ("ssh.service", "ssh.socket", "smartmontools.service", "smartd.service",
                  "e2scrub_reap.service", "e2scrub_all.timer", "apt-daily.timer",
                  "apt-daily-upgrade.timer", "fstrim.timer", "console-getty.service")  # fmt: skip


def key() -> str:
    """The hash naming the rootfs: everything that decides its content."""
    spec = {"suite": SUITE, "variant": VARIANT, "packages": sorted(PACKAGES),
            "finish": FINISH_VERSION, "sshd_unit": [SSHD_UNIT_NAME, SSHD_UNIT]}  # fmt: skip
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def path() -> Path:
    return CACHE_DIR / f"rootfs-{SUITE}-{key()}"


def cached() -> Path | None:
    """The complete rootfs, or None."""
    root = path()
    return root if (root / COMPLETE).is_file() else None


def missing_requirement() -> str | None:
    """Why this machine cannot build the rootfs, or None."""
    if os.geteuid() != 0:
        return "building the systemd host rootfs needs root"
    if shutil.which("debootstrap") is None:
        return "building the systemd host rootfs needs debootstrap (apt-get install debootstrap)"
    return None


# Why this process's build failed: every later test skips at once instead of trying again.
_failed: str | None = None


def ensure(build: bool = True) -> Path:
    """The cached rootfs, built first when missing and ``build`` is true.

    Raises RuntimeError with the reason when there is none.
    """
    global _failed
    found = cached()
    if found or not build:
        if found:
            return found
        raise RuntimeError(f"no systemd host rootfs at {path()} (python -m tests.sandbox_rootfs)")
    reason = missing_requirement() or _failed
    if reason:
        raise RuntimeError(reason)
    try:
        return _build_locked()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        _failed = str(exc) or type(exc).__name__
        raise RuntimeError(_failed) from exc


def _build_locked() -> Path:
    """Build under the lock: one builder; the others wait and reuse its result."""
    CACHE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(CACHE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = cached()
        if found:
            return found
        for leftover in CACHE_DIR.glob(".build-*"):  # an interrupted build: never reused
            shutil.rmtree(leftover, ignore_errors=True)
        return _build()


def _build() -> Path:
    tmp = CACHE_DIR / f".build-{key()}-{os.getpid()}"
    started = time.monotonic()
    argv = ["debootstrap", f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}",
            SUITE, str(tmp), MIRROR]  # fmt: skip
    log = CACHE_DIR / f"build-{key()}.log"
    try:
        with open(log, "w") as out:
            done = subprocess.run(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        if done.returncode != 0:
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            raise RuntimeError(f"debootstrap failed ({done.returncode}): {tail}")
        finish(tmp)
        seconds = time.monotonic() - started
        record = {"key": key(), "suite": SUITE, "packages": sorted(PACKAGES),
                  "build_seconds": round(seconds, 1), "built": time.time()}  # fmt: skip
        (tmp / COMPLETE).write_text(json.dumps(record))
        tmp.rename(path())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path()


def finish(root: Path) -> None:
    """Make the fresh tree a template for many hosts: no shared identity, no stray services."""
    for item in (root / "etc" / "ssh").glob("ssh_host_*"):
        item.unlink()  # every host gets its own key in its own layer
    for name in ("etc/machine-id", "var/lib/dbus/machine-id"):
        target = root / name
        if target.exists() or target.is_symlink():
            target.unlink()
    (root / "etc" / "machine-id").write_text("")  # each host writes its own in its layer
    system = root / "etc" / "systemd" / "system"
    for unit in DISABLED_UNITS:
        for link in system.glob(f"*.wants/{unit}"):
            link.unlink()
        mask = system / unit
        if mask.is_symlink() or not mask.exists():
            mask.unlink(missing_ok=True)
            mask.symlink_to("/dev/null")
    (system / SSHD_UNIT_NAME).write_text(SSHD_UNIT)
    wants = system / "multi-user.target.wants"
    wants.mkdir(exist_ok=True)
    (wants / SSHD_UNIT_NAME).symlink_to(f"/etc/systemd/system/{SSHD_UNIT_NAME}")
    # Persistent journal, so `journalctl -b -1` shows the boot before a reboot.
    (root / "var" / "log" / "journal").mkdir(exist_ok=True)
    (root / "etc" / "hostname").write_text("sandbox\n")
    apt_cache = root / "var" / "cache" / "apt" / "archives"
    for deb in apt_cache.glob("*.deb"):
        deb.unlink()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build the systemd sandbox hosts' rootfs when missing")
    p.add_argument("--path", action="store_true", help="print the cached rootfs, or exit 1")
    args = p.parse_args(argv)
    if args.path:
        found = cached()
        print(found or f"missing: {path()}")
        return 0 if found else 1
    if cached():
        print(f"sandbox rootfs: cached at {path()}")
        return 0
    print(f"sandbox rootfs: building {path()} (debootstrap {SUITE}, about 1.5 minutes)", flush=True)
    try:
        root = ensure()
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"sandbox rootfs: not built: {exc}", file=sys.stderr)
        return 1
    seconds = json.loads((root / COMPLETE).read_text())["build_seconds"]
    print(f"sandbox rootfs: built in {seconds} s at {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
