"""A sandbox host starts as this machine was before gotune tuned it.

This machine may be a developer's that ran ``gotune apply`` (the fresh-machine check's
machine does, following the README). A host's lower layer is this machine, so what
gotune left here would look to the tests like the host's own earlier apply. Its upper
layer hides that: what the machine's undo records say gotune made gets an overlayfs
whiteout, what they saved (a file's content before gotune) is put back, and gotune's
own paths (``MACHINE_GOTUNE``) and its fstab lines go too.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# gotune's own paths on a machine it tuned, hidden whatever the undo records say.
MACHINE_GOTUNE = ("/var/lib/gotune", "/etc/gotune", "/opt/gotune", "/var/cache/gotune",
                  "/usr/local/lib/gotune", "/usr/local/sbin/gotune-*", "/etc/cron.d/gotune-*",
                  "/etc/systemd/system/*gotune*", "/etc/systemd/system/*.wants/*gotune*",
                  "/etc/profile.d/*gotune*")
GOTUNE_FSTAB_MARK = "/var/cache/gotune/"
UNDO = "var/lib/gotune/undo"  # gotune.agent.paths.UNDO_DIR, below the machine's root


def before_gotune(machine: Path) -> dict[str, Path | None]:
    """Machine path (from its root) -> the saved copy to put back, or None to hide it:
    from its undo records (``files/<hex>``, ``files/<hex>.absent``, ``created/<hex>``)
    and ``MACHINE_GOTUNE``. A damaged record name is skipped."""
    found: dict[str, Path | None] = {}
    for kind in ("files", "created"):
        records = machine / UNDO / kind
        for rec in sorted(records.iterdir()) if records.is_dir() else ():
            try:
                path = bytes.fromhex(rec.name.removesuffix(".absent")).decode()
            except ValueError:
                continue
            saved = kind == "files" and not rec.name.endswith(".absent")
            found[path] = rec if saved else None
    for pattern in MACHINE_GOTUNE:
        for p in machine.glob(pattern.lstrip("/")):
            found.setdefault("/" + str(p.relative_to(machine)), None)
    return found


def _parents_as_below(upper: Path, machine: Path, rel: Path) -> None:
    """Make ``rel``'s missing parents in the upper layer with the lower layer's owner and mode."""
    for parent in reversed(rel.parents[:-1]):
        inner = upper / parent
        if not inner.exists():
            st = (machine / parent).stat()
            inner.mkdir()
            os.chown(inner, st.st_uid, st.st_gid)
            os.chmod(inner, st.st_mode & 0o7777)


def hide_machine_gotune(upper: Path, machine: Path = Path("/")) -> list[str]:
    """Fill a host's upper layer so the host starts as ``machine`` was before gotune;
    the paths hidden or put back."""
    changed = []
    hidden: list[str] = []
    for path, saved in sorted(before_gotune(machine).items()):
        rel = Path(path.lstrip("/"))
        if not rel.parts or any(path.startswith(h + "/") for h in hidden):
            continue  # below a hidden directory: gone with it
        if not (machine / rel).exists() and not (machine / rel).is_symlink():
            continue
        _parents_as_below(upper, machine, rel)
        if saved is None:
            os.mknod(upper / rel, 0o020000, os.makedev(0, 0))  # overlayfs' whiteout
            hidden.append(path)
            changed.append(path)
        else:  # cp -a: content, owner, mode, a symlink as a symlink, a directory whole
            subprocess.run(["cp", "-a", "--", str(saved), str(upper / rel)], check=True)
            changed.append(f"{path} (as before gotune)")
    fstab = machine / "etc" / "fstab"
    if "/etc/fstab" not in hidden and not (upper / "etc" / "fstab").exists() and fstab.is_file():
        lines = fstab.read_text().splitlines(keepends=True)
        kept = [line for line in lines if GOTUNE_FSTAB_MARK not in line]
        if kept != lines:  # no saved fstab: gotune's lines are dropped
            _parents_as_below(upper, machine, Path("etc/fstab"))
            (upper / "etc" / "fstab").write_text("".join(kept))
            os.chmod(upper / "etc" / "fstab", 0o644)
            changed.append("/etc/fstab (gotune's lines)")
    return changed
