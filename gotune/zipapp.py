"""Build the gotune agent: ``gotune.agent`` as one zipapp for target hosts.

Everything that runs on a target lives in ``gotune.agent`` and uses only the
standard library, so a host needs nothing but ``python3``: the deploys upload
``gotune.pyz`` to ``gotune.agent.paths.AGENT_PATH`` and run
``python3 /opt/gotune/gotune.pyz wear ...``; verify and NUMA measuring run the
same archive. No pip, no venv on the target. The archive holds
``gotune/__init__.py``, ``gotune/errors.py`` and ``gotune/agent/`` only.

The archive is byte-for-byte reproducible (sorted entries, fixed timestamps and
modes, no bytecode), so uploading it again is a no-op for ``files.put`` and its
sha256 tells whether a host already runs this very agent.
Standard library only: it runs wherever gotune itself runs.
"""

from __future__ import annotations

import functools
import hashlib
import io
import zipapp
import zipfile
from pathlib import Path

import gotune
from gotune.agent.fsutil import write_atomic

INTERPRETER = "/usr/bin/env python3"

# ZIP cannot store dates before 1980; a fixed date makes the bytes reproducible.
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
# The archive itself is executable (its shebang runs python3).
ARCHIVE_MODE = 0o755

MAIN = '''"""python3 gotune.pyz ... is the gotune command."""
import sys

from gotune.agent.cli import main

sys.exit(main())
'''


# The modules outside gotune/agent/ that the agent imports (standard library only).
SHARED_MODULES = ("__init__.py", "errors.py")


def package_files(root: Path | None = None) -> list[tuple[str, bytes]]:
    """(archive name, content) of every agent source file, sorted."""
    pkg = Path(gotune.__file__).parent if root is None else root
    paths = [pkg / name for name in SHARED_MODULES]
    paths += [p for p in (pkg / "agent").rglob("*.py") if "__pycache__" not in p.parts]
    return sorted((p.relative_to(pkg.parent).as_posix(), p.read_bytes()) for p in paths)


def _zip_bytes(files: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in [("__main__.py", MAIN.encode()), *files]:
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100000 | FILE_MODE) << 16
            info.create_system = 3  # unix, whatever the build machine is
            zf.writestr(info, data, compresslevel=9)
    return buf.getvalue()


def build_bytes(root: Path | None = None) -> bytes:
    """The zipapp's bytes: a deterministic zip, given its shebang by ``zipapp``."""
    source = io.BytesIO(_zip_bytes(package_files(root)))
    target = io.BytesIO()
    zipapp.create_archive(source, target, interpreter=INTERPRETER)
    return target.getvalue()


@functools.cache
def agent_bytes() -> bytes:
    """This checkout's zipapp, built once per control-machine run (every host gets it)."""
    return build_bytes()


@functools.cache
def agent_sha256() -> str:
    """The sha256 of ``agent_bytes()``: what an up-to-date host's agent hashes to."""
    return hashlib.sha256(agent_bytes()).hexdigest()


def build(dest: Path, root: Path | None = None) -> str:
    """Write the zipapp to ``dest`` (only when its bytes changed); return its sha256."""
    data = build_bytes(root)
    if not dest.exists() or dest.read_bytes() != data:
        write_atomic(dest, data, ARCHIVE_MODE)
    return hashlib.sha256(data).hexdigest()
