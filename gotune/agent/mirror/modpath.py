"""Module paths, versions and GOPROXY request paths, checked the way the go command does.

The rules follow golang.org/x/mod/module (CheckPath, CheckPathMajor, the ``!x``
case encoding) and golang.org/x/mod/semver, reimplemented from their documentation.
Anything that fails here never becomes a file name: the cache only ever joins
validated, escaped elements under its root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

# Longest request path accepted. Go limits nothing explicitly, but real module
# paths are well under 300 bytes; 2 KiB leaves room and stops absurd inputs early.
MAX_REQUEST_PATH = 2048

KINDS = ("info", "mod", "zip")

_WINDOWS_RESERVED = {
    "CON", "PRN", "AUX", "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}
_PATH_ELEM_CHARS = re.compile(r"^[A-Za-z0-9._~-]+$")
_FIRST_ELEM_CHARS = re.compile(r"^[a-z0-9.-]+$")
_NUM = r"(?:0|[1-9][0-9]*)"
_IDENT = r"[0-9A-Za-z-]+"
_CANONICAL = re.compile(
    rf"^v({_NUM})\.({_NUM})\.({_NUM})(-{_IDENT}(?:\.{_IDENT})*)?(\+incompatible)?$"
)
# A version query (branch, tag, shorthand) may go upstream for .info, uncached.
_QUERY_CHARS = re.compile(r"^[A-Za-z0-9._+~-]+$")


class InvalidPath(ValueError):
    """A request path that is not a module path/version (answered with 400)."""


def _check_elem(elem: str, module_path: bool) -> None:
    if not elem:
        raise InvalidPath("empty path element")
    if elem.strip(".") == "":
        raise InvalidPath(f"invalid path element {elem!r}")
    if module_path and elem.startswith("."):
        raise InvalidPath(f"leading dot in path element {elem!r}")
    if elem.endswith("."):
        raise InvalidPath(f"trailing dot in path element {elem!r}")
    if not _PATH_ELEM_CHARS.match(elem):
        raise InvalidPath(f"invalid character in path element {elem!r}")
    short = elem.split(".", 1)[0]
    if short.upper() in _WINDOWS_RESERVED:
        raise InvalidPath(f"{elem!r} is a reserved file name on Windows")
    tilde = short.rfind("~")
    if 0 <= tilde < len(short) - 1 and short[tilde + 1 :].isdigit():
        raise InvalidPath(f"trailing tilde and digits in path element {elem!r}")


def split_path_major(path: str) -> tuple[str, str, bool]:
    """Split ``example.com/m/v2`` into (``example.com/m``, ``/v2``, ok)."""
    if path.startswith("gopkg.in/"):
        m = re.match(r"^(.*)\.(v(?:0|[1-9][0-9]*))(-unstable)?$", path)
        if not m or m.group(2) == "v0":
            return path, "", False
        return m.group(1), f".{m.group(2)}{m.group(3) or ''}", True
    i = len(path)
    dot = False
    while i > 0 and (path[i - 1].isdigit() or path[i - 1] == "."):
        dot = dot or path[i - 1] == "."
        i -= 1
    if i <= 1 or i == len(path) or path[i - 1] != "v" or path[i - 2] != "/":
        return path, "", True
    prefix, major = path[: i - 2], path[i - 2 :]
    if dot or len(major) <= 2 or major[2] == "0" or major == "/v1":
        return path, "", False
    return prefix, major, True


def check_path(path: str) -> None:
    """Raise InvalidPath unless ``path`` is a valid module path (module.CheckPath)."""
    if not path or not path.isascii():
        raise InvalidPath("malformed module path")
    if path.startswith("/") or path.endswith("/") or "//" in path:
        raise InvalidPath(f"malformed module path {path!r}")
    for elem in path.split("/"):
        _check_elem(elem, module_path=True)
    first = path.split("/", 1)[0]
    if "." not in first:
        raise InvalidPath(f"missing dot in first path element of {path!r}")
    if first.startswith("-"):
        raise InvalidPath(f"leading dash in first path element of {path!r}")
    if not _FIRST_ELEM_CHARS.match(first):
        raise InvalidPath(f"invalid character in first path element of {path!r}")
    if not split_path_major(path)[2]:
        raise InvalidPath(f"invalid major version suffix in {path!r}")


def is_canonical(version: str) -> bool:
    """True for ``vX.Y.Z[-pre][+incompatible]`` (module.CanonicalVersion(v) == v)."""
    return _CANONICAL.match(version) is not None and not _bad_prerelease(version)


def _bad_prerelease(version: str) -> bool:
    m = _CANONICAL.match(version)
    pre = m.group(4) if m else None
    if not pre:
        return False
    return any(p.isdigit() and len(p) > 1 and p[0] == "0" for p in pre[1:].split("."))


def check_version(path: str, version: str) -> None:
    """Raise InvalidPath unless ``version`` is canonical and fits the path's major."""
    if not is_canonical(version):
        raise InvalidPath(f"version {version!r} is not canonical")
    major = "v" + version[1:].split(".", 1)[0]
    _, path_major, _ = split_path_major(path)
    if path_major.startswith(".v") and path_major.endswith("-unstable"):
        path_major = path_major.removesuffix("-unstable")
    if version.startswith("v0.0.0-") and path_major == ".v1":
        return
    if path_major == "":
        if major in ("v0", "v1") or version.endswith("+incompatible"):
            return
        raise InvalidPath(f"version {version} of {path} needs a /{major} module path")
    if path_major[1:] != major:
        raise InvalidPath(f"version {version} does not match {path}")


def escape(s: str) -> str:
    """The ``!x`` case encoding: upper-case letters become ``!`` + lower case."""
    if s.isascii() and "!" not in s and s.lower() == s:
        return s  # nothing to encode (the usual case): skip the per-character loop
    out = []
    for ch in s:
        if ch == "!" or not ch.isascii():
            raise InvalidPath(f"cannot escape {s!r}")
        out.append("!" + ch.lower() if "A" <= ch <= "Z" else ch)
    return "".join(out)


def unescape(s: str) -> str:
    """Decode the ``!x`` case encoding; upper case, a bare ``!`` or non-ASCII is invalid."""
    out = []
    bang = False
    for ch in s:
        if not ch.isascii():
            raise InvalidPath("non-ASCII character in escaped path")
        if bang:
            if not "a" <= ch <= "z":
                raise InvalidPath(f"invalid case encoding in {s!r}")
            out.append(ch.upper())
            bang = False
        elif ch == "!":
            bang = True
        elif "A" <= ch <= "Z":
            raise InvalidPath(f"unescaped upper-case letter in {s!r}")
        else:
            out.append(ch)
    if bang:
        raise InvalidPath(f"invalid case encoding in {s!r}")
    return "".join(out)


@dataclass(frozen=True)
class Request:
    """One GOPROXY request: kind is list, latest, info, mod or zip."""

    kind: str
    module: str  # decoded, e.g. example.com/BigCorp/Lib
    version: str = ""  # decoded; empty for list/latest
    canonical: bool = True  # False: a version query (.info only), never cached

    @property
    def escaped_module(self) -> str:
        return escape(self.module)

    @property
    def escaped_version(self) -> str:
        return escape(self.version)

    def upstream_path(self) -> str:
        """The path below a proxy base URL, e.g. ``/example.com/!big!corp/lib/@v/list``."""
        base = f"/{self.escaped_module}"
        if self.kind == "list":
            return f"{base}/@v/list"
        if self.kind == "latest":
            return f"{base}/@latest"
        return f"{base}/@v/{self.escaped_version}.{self.kind}"

    def key(self) -> str:
        return self.upstream_path()


def decode_url_path(raw: str) -> str:
    """Percent-decode a URL path strictly: bad UTF-8, NUL or control bytes are invalid."""
    if len(raw) > MAX_REQUEST_PATH:
        raise InvalidPath("request path too long")
    path = raw.split("?", 1)[0]
    try:
        decoded = unquote(path, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidPath("request path is not UTF-8") from exc
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        raise InvalidPath("control character in request path")
    return decoded


def parse_request(raw: str) -> Request:
    """Parse a GOPROXY URL path into a validated Request, or raise InvalidPath."""
    path = decode_url_path(raw)
    if not path.startswith("/"):
        raise InvalidPath("request path must start with /")
    path = path[1:]
    if path.endswith("/@latest"):
        module = unescape(path.removesuffix("/@latest"))
        check_path(module)
        return Request("latest", module)
    if "/@v/" not in path:
        raise InvalidPath("not a GOPROXY path")
    esc_module, rest = path.rsplit("/@v/", 1)
    module = unescape(esc_module)
    check_path(module)
    if rest == "list":
        return Request("list", module)
    stem, dot, ext = rest.rpartition(".")
    if not dot or ext not in KINDS or not stem:
        raise InvalidPath(f"unknown GOPROXY file {rest!r}")
    version = unescape(stem)
    if is_canonical(version):
        check_version(module, version)
        return Request(ext, module, version)
    if ext == "info" and _QUERY_CHARS.match(version) and not version.startswith("."):
        return Request("info", module, version, canonical=False)
    raise InvalidPath(f"version {version!r} is not canonical")


_PRE_ID = re.compile(r"^[0-9]+$")


def _pre_key(pre: str) -> tuple[tuple[int, int, str], ...]:
    parts = []
    for p in pre.split("."):
        if _PRE_ID.match(p):
            parts.append((0, int(p), ""))
        else:
            parts.append((1, 0, p))
    return tuple(parts)


def version_sort_key(version: str) -> tuple[object, ...]:
    """Semver order (build metadata ignored, then the string) for canonical versions."""
    m = _CANONICAL.match(version)
    if not m:
        return (1, (), version)
    nums = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    pre = m.group(4)
    # A release sorts after every prerelease of the same X.Y.Z.
    pre_key: tuple[object, ...] = (1,) if not pre else (0, _pre_key(pre[1:]))
    return (0, nums, pre_key, version)
