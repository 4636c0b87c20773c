"""Build the gotune agent: the ``gotune`` package as one zipapp for target hosts.

Target-side services (the wear check, the mirror) use only the standard library,
so a host needs nothing but ``python3``: the deploy uploads ``gotune.pyz`` and runs
``python3 /opt/gotune/gotune.pyz wear ...``. No pip, no venv on the target.

The archive is byte-for-byte reproducible (sorted entries, fixed timestamps and
modes, no bytecode), so uploading it again is a no-op for ``files.put``.
Standard library only: it runs wherever gotune itself runs.
"""

from __future__ import annotations

import hashlib
import io
import zipapp
import zipfile
from pathlib import Path

import gotune

AGENT_PATH = "/opt/gotune/gotune.pyz"
INTERPRETER = "/usr/bin/env python3"

# ZIP cannot store dates before 1980; a fixed date makes the bytes reproducible.
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644

MAIN = '''"""python3 gotune.pyz ... is the gotune command."""
import sys

from gotune.cli import main

sys.exit(main())
'''


def package_files(root: Path | None = None) -> list[tuple[str, bytes]]:
    """(archive name, content) of every source file of the gotune package, sorted."""
    pkg = Path(gotune.__file__).resolve().parent if root is None else root
    out = []
    for path in sorted(pkg.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        if path.suffix not in (".py", ".typed"):
            continue
        rel = path.relative_to(pkg.parent).as_posix()
        out.append((rel, path.read_bytes()))
    return out


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


def build(dest: Path, root: Path | None = None) -> str:
    """Write the zipapp to ``dest`` (only when its bytes changed); return its sha256."""
    data = build_bytes(root)
    if not dest.exists() or dest.read_bytes() != data:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        tmp.write_bytes(data)
        tmp.chmod(0o755)
        tmp.replace(dest)
    return hashlib.sha256(data).hexdigest()
