"""Installing the Go toolchain: a checked tarball in a versioned root, or the distro package.

Tarball installs unpack into ``/usr/local/go-<version>`` and switch the
``/usr/local/go`` symlink with one rename, so ``go`` is always either the old
toolchain or the new one.

An https tarball is downloaded once on the control machine (``fetch_tarball``),
not on each host: a fleet pays one download, hosts need neither curl nor wget
nor a route to go.dev, and a bad URL or checksum stops the run before any host
changes, naming the URL and the HTTP status or network error. The archive's
SHA-256 is checked on the control machine before it is uploaded, and again on
the host before ``tar`` runs.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import urllib.error
import urllib.request
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import OperationError, StringCommand, operation
from pyinfra.facts.files import File
from pyinfra.facts.server import Which
from pyinfra.operations import files

from gotune.agent.fsutil import write_atomic
from gotune.agent.paths import CACHE_ROOT
from gotune.operations import control
from gotune.operations.render import render
from gotune.operations.state import file as state_file
from gotune.operations.state import link as state_link
from gotune.operations.state import package as state_package
from gotune.operations.state import record_cmd, record_created_cmd

q = shlex.quote

ARCHIVE_DIR = CACHE_ROOT
PROFILE_SNIPPET = "/etc/profile.d/gotune.sh"
# Links in /usr/local/bin put go on PATH for non-login shells and IDEs too.
BIN_LINKS = ("go", "gofmt")
# The distribution's Go package under each package tool (Debian/Ubuntu, Fedora/RHEL, SUSE,
# Alpine, Arch).
DISTRO_PACKAGES = {"apt-get": "golang-go", "dnf": "golang", "yum": "golang", "zypper": "go",
                   "apk": "go", "pacman": "go"}


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# Seconds a slow mirror may take to answer; the download itself may take longer.
DOWNLOAD_TIMEOUT_S = 60


def check_local_tarball(tarball: str, sha256: str) -> None:
    """Refuse a control-machine tarball whose checksum is not the one configured."""
    got = sha256_of(tarball)
    if got != sha256:
        raise OperationError(
            f"checksum mismatch for {tarball}: sha256 is {got}, gotune_go_sha256 says {sha256}; "
            "nothing installed, the old toolchain is kept"
        )


def download_dir() -> Path:
    """Where the control machine keeps downloaded tarballs, named by their SHA-256."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gotune" / "go"


def fetch_tarball(url: str, sha256: str) -> str:
    """Download ``url`` once to the control machine's cache and check it; its local path.

    Raises OperationError naming the URL and the HTTP status or network error; nothing
    on any host has changed when it does.
    """
    dest = download_dir() / f"{sha256}.tar.gz"
    if dest.is_file() and sha256_of(str(dest)) == sha256:
        return str(dest)
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:  # noqa: S310
            data = resp.read()
    except urllib.error.HTTPError as exc:
        raise OperationError(
            f"cannot download {url}: HTTP {exc.code} {exc.reason}; nothing was changed"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        why = getattr(exc, "reason", None) or exc
        raise OperationError(f"cannot download {url}: {why}; nothing was changed") from None
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise OperationError(
            f"checksum mismatch for {url}: sha256 is {got}, gotune_go_sha256 says {sha256}; "
            "nothing was changed"
        )
    write_atomic(dest, data)
    return str(dest)


@operation()
def go_tarball(
    version: str, tarball: str, sha256: str, prefix: str = "/usr/local"
) -> Generator[Any, None, None]:
    """
    Install Go ``version`` from a checked tarball and make it ``<prefix>/go``.

    + version: the Go version, like ``1.22.3``
    + tarball: an https URL (downloaded once on the control machine) or a path there; uploaded
    + sha256: the tarball's SHA-256, checked before unpacking
    + prefix: where ``go-<version>`` and the ``go`` symlink live

    **Example:**

    .. code:: python

        toolchain.go_tarball(version="1.22.3", tarball="https://go.dev/dl/go1.22.3.linux-amd64.tar.gz",
                             sha256="8920ea52...")
    """
    root = f"{prefix}/go-{version}"
    if not host.get_fact(File, path=f"{root}/bin/go"):
        archive = f"{ARCHIVE_DIR}/go{version}.tar.gz"
        # Checked before anything is yielded: a bad tarball changes nothing.
        if tarball.startswith("https://"):
            if not control.dry():  # a dry run downloads nothing: the URL is what it shows
                tarball = fetch_tarball(tarball, sha256)
        elif not Path(tarball).is_file():
            raise OperationError(
                f"gotune_go_tarball {tarball}: no such file on the control machine"
            )
        else:
            check_local_tarball(tarball, sha256)
        yield f"{record_created_cmd(ARCHIVE_DIR)} && mkdir -p -m 0755 {ARCHIVE_DIR}"
        yield from files.put._inner(src=tarball, dest=archive, mode="644")
        tmp = f"{root}.gotune-tmp"
        yield record_cmd("created", root.encode().hex(), root)
        yield StringCommand(
            f"if ! printf '%s  %s\\n' {q(sha256)} {q(archive)} | sha256sum -c --status; then "
            f"rm -f {q(archive)}; echo 'gotune: checksum mismatch for {archive}; "
            "the old toolchain is kept' >&2; exit 1; fi && "
            f"rm -rf {q(tmp)} && mkdir -p {q(tmp)} && tar -C {q(tmp)} -xzf {q(archive)} && "
            f"test -x {q(tmp)}/go/bin/go && rm -rf {q(root)} && mv {q(tmp)}/go {q(root)} && "
            f"rmdir {q(tmp)} && rm -f {q(archive)}"
        )
    else:
        host.noop(f"{root} is installed")
    yield from state_link._inner(path=f"{prefix}/go", target=f"go-{version}", move_dirs=True)
    for name in BIN_LINKS:
        yield from state_link._inner(path=f"{prefix}/bin/{name}", target=f"{prefix}/go/bin/{name}")
    yield from state_file._inner(
        path=PROFILE_SNIPPET, content=profile_snippet(f"{prefix}/go/bin"), mode=0o644
    )


def profile_snippet(bin_dir: str) -> str:
    return render("toolchain-profile.sh.j2", go_bin=bin_dir)


@operation()
def go_distro(distro: Sequence[str] = ()) -> Generator[Any, None, None]:
    """
    Install the distribution's Go package (golang-go, golang or go).

    + distro: the host's distribution and those it is like (os-release ``ID``, then
      ``ID_LIKE``): its own package tool installs

    **Example:**

    .. code:: python

        toolchain.go_distro(distro=["fedora"])
    """
    yield from state_package._inner(
        names=DISTRO_PACKAGES, present=bool(host.get_fact(Which, command="go")), distro=distro
    )
