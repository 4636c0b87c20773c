"""Sandbox hosts that pose as Fedora, openSUSE or Arch, for gotune's package installs.

Debian ships those distributions' package tools (dnf, zypper, pacman, rpm), and a sandbox
host sees this machine's: the tools, their databases, their repository formats and the
pyinfra operations that drive them are all real here. What is not here is a Fedora,
openSUSE or Arch mirror (only Debian's is reachable), so each host gets a local repository
holding one stand-in package, ``smartmontools``, whose only file is this machine's
``/usr/sbin/smartctl`` (Debian's build, from the smartmontools package the tests install).

- rpm-md (dnf, zypper): built by ``rpmbuild`` and ``createrepo_c``;
- pacman: the package (a tar with ``.PKGINFO``) and the sync database (a tar of ``desc``
  files) written here, as ``repo-add`` writes them (that script needs makepkg, which the
  tests do not install).
"""

from __future__ import annotations

import hashlib
import io
import shlex
import subprocess
import tarfile
from pathlib import Path

from tests.sandbox import SandboxHost

SMARTCTL = Path("/usr/sbin/smartctl")
NAME, VERSION = "smartmontools", "7.3-1"
# Inside a host: where its repository is unpacked.
REPO = "/srv/gotune-test-repo"
EPOCH = 1_700_000_000  # fixed times: the same bytes on every build

# A real host's package database is never empty, and tools fail on an empty one (zypper's
# remove: rpmdb2solv cannot cache it; ``pacman -Q`` exits 1): the pose installs this first.
BASE = "gotune-test-base"
RPM_HEAD = """\
Name: {name}
Version: {version}
Release: {release}
Summary: {summary}
License: GPL-2.0-or-later
BuildArch: noarch
AutoReqProv: no
%define _binaries_in_noarch_packages_terminate_build 0
%define _build_id_links none
%define __os_install_post %{{nil}}
%description
{summary}
"""
RPM_SPECS = {
    NAME: RPM_HEAD.format(name=NAME, version=VERSION.split("-")[0],
                          release=VERSION.split("-")[1],
                          summary="stand-in for the distribution's smartmontools")
    + "%install\nmkdir -p %{buildroot}/usr/sbin\n"
    f"cp {SMARTCTL} %{{buildroot}}/usr/sbin/smartctl\n%files\n/usr/sbin/smartctl\n",
    BASE: RPM_HEAD.format(name=BASE, version="1", release="1",
                          summary="stand-in for a base system") + "%files\n",
}  # fmt: skip

# What each pose writes in the host, and how the host asks its own database.
OS_RELEASE = {
    "dnf": 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=41\n',
    "zypper": 'NAME="openSUSE Leap"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\n'
    'VERSION_ID="15.6"\n',
    "pacman": 'NAME="Arch Linux"\nID=arch\n',
}
INSTALLED = {
    "dnf": f"rpm -q {NAME}",
    "zypper": f"rpm -q {NAME}",
    "pacman": f"pacman -Q {NAME}",
}
# The repository's configuration. On rpm hosts: Debian's rpm keeps its database in ~/.rpmdb
# and libzypp in /var/lib/rpm, where a real rpm distribution has one for all its tools, with
# its base system in it (BASE).
RPM_DB = "mkdir -p /etc/rpm && echo '%_dbpath /var/lib/rpm' > /etc/rpm/macros"
CONFIGURE = {
    "dnf": f"{RPM_DB} && mkdir -p /etc/yum.repos.d"
    f" && printf '[standin]\\nname=standin\\nbaseurl=file://{REPO}\\ngpgcheck=0\\n'"
    " > /etc/yum.repos.d/standin.repo",
    "zypper": f"{RPM_DB}"
    f" && zypper --non-interactive addrepo --no-gpgcheck file://{REPO} standin >/dev/null",
    # pyinfra's pacman.packages does not sync; an Arch host's databases are synced already.
    "pacman": "printf '[options]\\nArchitecture = auto\\nSigLevel = Never\\n"
    f"[standin]\\nServer = file://{REPO}\\n' > /etc/pacman.conf && pacman -Sy >/dev/null",
}
INSTALL_BASE = {
    "dnf": f"rpm -i {REPO}/{BASE}-1-1.noarch.rpm",
    "zypper": f"rpm -i {REPO}/{BASE}-1-1.noarch.rpm",
    "pacman": f"pacman --noconfirm -S {BASE} >/dev/null",
}


# What building and using each tool's repository takes on this machine.
NEEDS = {
    "dnf": ("dnf", "rpm", "rpmbuild", "createrepo_c"),
    "zypper": ("zypper", "rpm", "rpmbuild", "createrepo_c"),
    "pacman": ("pacman",),
}


def build(tool: str, work: Path) -> bytes:
    """The stand-in repository ``tool`` installs from, as a tar (``work``: a scratch dir)."""
    return pacman_repo() if tool == "pacman" else rpm_repo(work)


def rpm_repo(work: Path) -> bytes:
    """An rpm-md repository with the stand-in packages, as a tar."""
    top = work / "rpmbuild"
    (top / "SPECS").mkdir(parents=True)
    for name, text in RPM_SPECS.items():
        spec = top / "SPECS" / f"{name}.spec"
        spec.write_text(text)
        subprocess.run(["rpmbuild", "--quiet", "--define", f"_topdir {top}", "-bb", str(spec)],
                       check=True, capture_output=True)  # fmt: skip
    repo = top / "RPMS" / "noarch"
    subprocess.run(["createrepo_c", "--quiet", str(repo)], check=True, capture_output=True)
    return _tar_dir(repo)


def pacman_repo() -> bytes:
    """A pacman repository named ``standin`` with the stand-in packages, as a tar."""
    binary = SMARTCTL.read_bytes()
    files, entries = [], []
    for name, version, content in ((NAME, VERSION, binary), (BASE, "1-1", None)):
        info = (
            f"pkgname = {name}\npkgbase = {name}\npkgver = {version}\npkgdesc = stand-in\n"
            f"builddate = {EPOCH}\npackager = gotune tests\nsize = {len(content or b'')}\n"
            "arch = any\n"
        )
        members: list[tuple[str, bytes | None, int]] = [(".PKGINFO", info.encode(), 0o644)]
        if content is not None:
            members += [("usr/", None, 0o755), ("usr/sbin/", None, 0o755),
                        ("usr/sbin/smartctl", content, 0o755)]  # fmt: skip
        pkg = _tar(members)
        filename = f"{name}-{version}-any.pkg.tar.gz"
        desc = "".join(
            f"%{key}%\n{value}\n\n"
            for key, value in (
                ("FILENAME", filename), ("NAME", name), ("VERSION", version),
                ("DESC", "stand-in"), ("CSIZE", len(pkg)), ("ISIZE", len(content or b"")),
                ("SHA256SUM", hashlib.sha256(pkg).hexdigest()), ("ARCH", "any"),
                ("BUILDDATE", EPOCH),
            )
        )  # fmt: skip
        files.append((filename, pkg, 0o644))
        entries += [(f"{name}-{version}/", None, 0o755),
                    (f"{name}-{version}/desc", desc.encode(), 0o644)]  # fmt: skip
    return _tar([*files, ("standin.db", _tar(entries), 0o644)], gz=False)


def pose_as(host: SandboxHost, tool: str, repo: bytes, base: bool = True) -> None:
    """Make ``host`` a host of ``tool``'s distribution with the stand-in repository: its
    os-release, the repository unpacked at REPO and configured, and (``base``) the base
    package installed (this machine untouched)."""
    script = (
        f"mkdir -p {REPO} && tar -x -C {REPO}"
        f" && printf '%s' {shlex.quote(OS_RELEASE[tool])} > /etc/os-release && {CONFIGURE[tool]}"
        + (f" && {INSTALL_BASE[tool]}" if base else "")
    )
    out = subprocess.run([*host.ssh_argv(), script], input=repo, capture_output=True,
                         timeout=120, check=False)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"cannot pose {host.name} as a {tool} host: {out.stderr.decode()}")


def _tar_dir(path: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for item in sorted(path.rglob("*")):
            tar.add(item, arcname=str(item.relative_to(path)), recursive=False)
    return buf.getvalue()


def _tar(members: list[tuple[str, bytes | None, int]], gz: bool = True) -> bytes:
    """A tar, gzipped or not, of (name, content or None for a directory, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for name, content, perm in members:
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mode, info.mtime = perm, EPOCH
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()
