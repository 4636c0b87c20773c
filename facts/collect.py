"""The one collector command, and the splitter that turns its output back into files.

gotune pays one round trip per host: a single POSIX ``sh`` command reads every
raw input (sysfs and procfs files, symlink targets, a few tool outputs such as
``go env -json``) below a root prefix and prints them as tagged records. The
topic modules (``facts.cpu``, ``facts.numa`` ...) parse those records with
pure functions, so a recorded tree (``--sysroot DIR``) reads exactly like a
live host.

Framing, from the inside out:

* every record starts with a header line ``@@TAG LEN:NAME`` where NAME is a
  path below the root (or a command name) and LEN its length in bytes, so a
  name may hold spaces, quotes or newlines;
* content lines follow, each prefixed ``|`` so no content line can look like
  a header; multi-line content ends with a trailer ``|@@end RC`` holding the
  exit status, printed after one extra newline so a missing final newline
  survives;
* the whole stream goes through one ``sed`` in the C locale, which does both:
  the shell prints headers and banners behind a random marker made per
  command (``MARKER_BYTES``), which sed strips, and every other line (content,
  which no file can make start with a marker it cannot know) gets its ``|``;
  then ``l`` prints every byte that is not printable ASCII (NUL, UTF-8,
  control bytes) as an octal escape and ends each line with ``$``. The output
  is plain ASCII lines, which is what pyinfra's connectors hand to
  ``process()``. So no process is started per file just to frame it; link
  targets and statvfs figures are read in one go, and when such a batch
  cannot be trusted (a failure, a line too many) each item is read alone.

The shell program is ``facts/collect.sh`` (package data, checked by shellcheck);
the command only puts a prelude before it that sets its inputs (root prefix,
developer user names, marker, timeouts), each ``shlex.quote``d (names checked
against ``USER_NAME`` first). Nothing is pasted into the
program itself, and every file name it meets is only ever a quoted argument.
"""

from __future__ import annotations

import re
import secrets
import shlex
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources

# Seconds allowed for anything that can block on the target (go env, dmidecode,
# statvfs of one mount): long enough for a cold `go env` on a slow disk, short
# enough that a hung NFS server cannot stall a fleet run.
TOOL_TIMEOUT_S = 20
STATVFS_TIMEOUT_S = 5
# A Windows program started through WSL's interop: PowerShell's cold start takes 1-3 s
# on a busy laptop; 10 s stops a hung interop socket from stalling the run.
WINDOWS_TIMEOUT_S = 10
# The Windows PATH's cost (collect_wsl_path): 10 rounds of interleaved samples, so the
# plan's A/B rule gets two batches of 5 runs; each sample times 2 lookups that miss
# (with 10-30 Windows folders at 0.1-1 ms a 9p round trip, 2-60 ms: well above date's
# own ~1 ms, and the whole measurement stays under a second on a real WSL).
WSL_LOOKUP_ROUNDS = 10
WSL_LOOKUPS = 2
# Lookups timed per Windows drive and on / (collect_wsl_drive_cost): 200 at 9p's
# 0.1-1 ms each take 0.02-0.2 s, long enough to rise above date's own cost.
WSL_STATS = 200
# The newest lines of a shell history searched for /mnt paths, and the candidate
# directories checked for a go.mod (each check is a few 9p round trips).
WSL_HISTORY_LINES = 5000
WSL_CANDIDATES = 40
# Random bytes of the per-command header marker (``emit_header`` in collect.sh): 128 bits,
# so no file read on the target can carry it by chance or by guess.
MARKER_BYTES = 16

# A user name gotune will pass to su: POSIX portable names (plus a trailing $
# for Samba machine accounts). Anything else is refused before it reaches a shell.
USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")

# The shell program (package data beside this module), read once at import.
SCRIPT_FILE = resources.files("gotune") / "facts" / "collect.sh"
SCRIPT = SCRIPT_FILE.read_text(encoding="utf-8")


def build_command(
    sysroot: str = "/", users: Sequence[str] = (), windows_profile: str | None = None
) -> str:
    """The one shell command that collects every raw input of a host.

    + sysroot: root prefix to read below ("/" for the live host, a recorded tree otherwise)
    + users: the developer users whose ``go env``, GOENV file and home matter
    + windows_profile: on WSL, the Windows user's profile as a Linux path (None: ask
      Windows through interop)
    """
    if isinstance(users, str):
        raise TypeError("users must be a list of user names, not a string")
    for user in users:
        if not USER_NAME.fullmatch(user):
            raise ValueError(f"not a valid user name: {user!r}")
    root = sysroot.rstrip("/")
    if sysroot and not sysroot.startswith("/"):
        raise ValueError(f"sysroot must be an absolute path: {sysroot!r}")
    marker = "@" + secrets.token_hex(MARKER_BYTES)
    # The script's inputs (see the head of collect.sh): set by a prelude, never
    # pasted into the script, so shellcheck reads the script as it runs.
    inputs = {
        "R": root,
        "USERS": " ".join(users),
        "MARKER": marker,
        "TOOL_TIMEOUT": str(TOOL_TIMEOUT_S),
        "STATVFS_TIMEOUT": str(STATVFS_TIMEOUT_S),
        "WINDOWS_TIMEOUT": str(WINDOWS_TIMEOUT_S),
        "WSL_PROFILE": windows_profile or "",
        "WSL_LOOKUP_ROUNDS": str(WSL_LOOKUP_ROUNDS),
        "WSL_LOOKUPS": str(WSL_LOOKUPS),
        "WSL_STATS": str(WSL_STATS),
        "WSL_HISTORY_LINES": str(WSL_HISTORY_LINES),
        "WSL_CANDIDATES": str(WSL_CANDIDATES),
    }
    prelude = "; ".join(f"{name}={shlex.quote(value)}" for name, value in inputs.items())
    # sed is the framer and encoder: content lines get "|", marked lines lose
    # the marker, every line is escaped by `l`. Without sed nothing is printed
    # but one marker line.
    encode = f"-e '/^{marker}/!s/^/|/' -e 's/^{marker}//' -e l"
    return (
        "if command -v sed >/dev/null 2>&1; then "
        f"( {prelude}\n{SCRIPT}\n) 2>/dev/null | LC_ALL=C sed -n {encode}; "
        "else echo '@@gotune:no-sed'; fi"
    )


_ESCAPES = {
    "\\": 0x5C,
    "a": 0x07,
    "b": 0x08,
    "f": 0x0C,
    "n": 0x0A,
    "r": 0x0D,
    "t": 0x09,
    "v": 0x0B,
}


def decode_sed_l(lines: Iterable[str]) -> bytes:
    """Undo ``sed -n l``: octal and C escapes, ``$`` line ends, ``\\`` line folds.

    Lines that are not in that form (a truncated stream, noise) are skipped.
    """
    out = bytearray()
    for line in lines:
        line = line.rstrip("\r\n")
        i, n = 0, len(line)
        buf = bytearray()
        ended = folded = False
        while i < n:
            ch = line[i]
            if ch == "\\":
                if i + 1 >= n:
                    folded = True  # a lone backslash at the end: the line continues
                    break
                nxt = line[i + 1]
                if nxt in _ESCAPES:
                    buf.append(_ESCAPES[nxt])
                    i += 2
                    continue
                octal = line[i + 1 : i + 4]
                if len(octal) == 3 and all(c in "01234567" for c in octal):
                    buf.append(int(octal, 8) & 0xFF)
                    i += 4
                    continue
                buf.append(0x5C)
                i += 1
                continue
            if ch == "$" and i == n - 1:
                ended = True
                break
            buf += ch.encode("utf-8", "replace")
            i += 1
        if not (ended or folded):
            continue
        out += buf
        if ended:
            out += b"\n"
    return bytes(out)


@dataclass
class Dump:
    """What the collector saw, keyed by path below the root ("/proc/cpuinfo")."""

    values: dict[str, str] = field(default_factory=dict)  # first line of attribute files
    files: dict[str, bytes] = field(default_factory=dict)  # whole files
    links: dict[str, str] = field(default_factory=dict)  # symlink targets
    exists: set[str] = field(default_factory=set)
    commands: dict[str, tuple[bytes, int | None]] = field(default_factory=dict)  # output, status
    errors: dict[str, str] = field(default_factory=dict)  # path or command -> why unreadable
    skipped: list[str] = field(default_factory=list)
    batch: list[str] = field(default_factory=list)  # names announced for the next batch record
    live: bool = False
    complete: bool = False  # the stream started with the collector's banner

    def value(self, path: str) -> str | None:
        """First line of an attribute file, stripped; None when absent or empty."""
        text = self.values.get(path)
        if text is None:
            data = self.files.get(path)
            text = data.decode("utf-8", "replace").split("\n", 1)[0] if data is not None else None
        if text is None:
            return None
        text = text.strip()
        return text or None

    def text(self, path: str) -> str | None:
        data = self.files.get(path)
        return None if data is None else data.decode("utf-8", "replace")

    def children(self, prefix: str) -> list[str]:
        """Names directly below ``prefix`` that the collector saw, sorted."""
        prefix = prefix.rstrip("/") + "/"
        names: set[str] = set()
        for table in (self.values, self.files, self.links, self.exists):
            for key in table:
                if key.startswith(prefix):
                    names.add(key[len(prefix) :].split("/", 1)[0])
        return sorted(names)

    def output(self, name: str) -> str | None:
        """A command's stdout when it ran and exited 0, else None."""
        got = self.commands.get(name)
        if got is None or got[1] != 0:
            return None
        return got[0].decode("utf-8", "replace")


_HEADER = re.compile(rb"@@([A-Za-z]+) (\d+):")
_SLASHES = re.compile(r"/{2,}")


def _norm(path: str) -> str:
    path = _SLASHES.sub("/", path)
    return path if path.startswith("/") else "/" + path


def split_records(raw: bytes) -> Dump:
    """Split the decoded stream into a Dump; garbled records are dropped, never fatal."""
    dump = Dump()
    pos, n = 0, len(raw)
    tag: str | None = None
    name = ""
    body: list[bytes] = []

    def finish() -> None:
        if tag is None:
            return
        _store(dump, tag, name, body)

    while pos < n:
        if raw.startswith(b"@@", pos):
            finish()
            tag, body = None, []
            m = _HEADER.match(raw, pos)
            if m:
                size = int(m.group(2))
                start = m.end()
                end = start + size
                if end <= n and (end == n or raw[end : end + 1] == b"\n"):
                    tag = m.group(1).decode()
                    name = raw[start:end].decode("utf-8", "replace")
                    pos = end + 1
                    continue
            nl = raw.find(b"\n", pos)
            line = raw[pos : n if nl < 0 else nl]
            if line == b"@@gotune 1":
                dump.complete = True
            elif line == b"@@live 1":
                dump.live = True
            elif line.startswith(b"@@skip "):
                dump.skipped.append(line[7:].decode("utf-8", "replace"))
            pos = n if nl < 0 else nl + 1
            continue
        nl = raw.find(b"\n", pos)
        line = raw[pos : n if nl < 0 else nl]
        pos = n if nl < 0 else nl + 1
        if tag is not None and line.startswith(b"|"):
            body.append(line[1:])
    finish()
    return dump


_TRAILER = re.compile(rb"@@end (\d+)")


def _store(dump: Dump, tag: str, name: str, body: list[bytes]) -> None:
    if tag == "E":
        dump.exists.add(_norm(name))
        return
    if tag == "V":
        if body:
            dump.values[_norm(name)] = body[0].decode("utf-8", "replace")
        return
    if tag == "N":
        dump.batch.append(_norm(name))
        return
    if tag == "B":
        names, dump.batch = dump.batch, []
        trailer = _TRAILER.fullmatch(body[-1]) if body else None
        lines = body[:-1]
        if lines and lines[-1] == b"":
            lines = lines[:-1]  # the newline printed before the trailer
        # One line per file, in order; any other count means a file was not one
        # line (or unreadable), and then no line can be trusted to its name.
        if trailer is None or trailer.group(1) != b"0" or len(lines) != len(names):
            for key in names:
                dump.errors[key] = "batch read failed"
            return
        for key, line in zip(names, lines, strict=True):
            dump.values[key] = line.decode("utf-8", "replace")
        return
    if tag not in ("C", "L", "X"):
        return
    key = name if tag == "X" else _norm(name)
    trailer = _TRAILER.fullmatch(body[-1]) if body else None
    if trailer is None:
        dump.errors[key] = "output cut short"
        return
    status = int(trailer.group(1))
    content = b"\n".join(body[:-1])
    if tag == "X":
        dump.commands[key] = (content, status)
    elif status != 0:
        dump.errors[key] = f"unreadable (status {status})"
    elif tag == "C":
        dump.files[key] = content
    else:
        dump.links[key] = content.decode("utf-8", "replace").rstrip("\n")


def collect_local(
    sysroot: str = "/", users: Sequence[str] = (), timeout: float = 120,
    windows_profile: str | None = None,
) -> list[str]:
    """Run the collector on this machine with /bin/sh; the output lines, as pyinfra would see them.

    + sysroot: root prefix (a recorded tree, or "/")
    + users: developer users for ``go env`` (none: skip)
    """
    out = subprocess.run(
        ["/bin/sh", "-c", build_command(sysroot, users, windows_profile)],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return out.stdout.decode("ascii", "replace").splitlines()
