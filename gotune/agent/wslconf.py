"""WSL's two configuration files, read and changed the way WSL itself reads them.

``/etc/wsl.conf`` (per distro, read by WSL's init inside Linux) and
``%USERPROFILE%\\.wslconfig`` (per Windows user, read by the WSL service on
Windows) share one dialect, WSL's ``ParseConfigFile`` (microsoft/WSL,
``src/shared/configfile/configfile.cpp``), which this module follows:

- a line is blank, a ``#`` comment, a ``[section]`` (a letter, then letters and
  digits) or ``key = value`` (the key likewise); anything else is an invalid line,
  which WSL skips with a warning — and which an older WSL took as a reason to
  ignore the whole file, so gotune never writes a file that holds one;
- names match without regard to case; a key is ``section.key``; when a key is
  set twice the first wins (WSL warns about the second), also across a section
  written twice;
- a value ends at the line end or at a ``#`` outside double quotes; ``"`` toggles
  quoting and is dropped; ``\\\\ \\" \\b \\n \\t`` are escapes, a backslash at the line
  end continues the value on the next line, any other escape makes the line invalid.

On Windows the file is opened as text with ``ccs=UTF-8``: a UTF-8 or UTF-16 byte
order mark and CRLF line ends are read fine there. Inside Linux wsl.conf is read
byte by byte: a byte order mark spoils line 1, and a WSL from before 2022 ignored
a wsl.conf with CRLF lines (microsoft/WSL#8002), so ``merge`` can drop both there.

``merge`` changes only the keys it is given (the first place each is set, else the
end of the first block of its section, else a new section at the end) and keeps
every other byte: comments, order, spacing, unknown keys, keys set twice, the byte
order mark, the line ends. ``check_merge`` parses the result back and refuses it
unless every wanted key reads as wanted and every other key reads as before.
Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# Text encodings gotune reads and writes back unchanged: what Notepad and PowerShell
# save (UTF-8 with or without a byte order mark, "Unicode" = UTF-16 LE with one).
UTF8 = "utf-8"
UTF16_LE = "utf-16-le"
UTF16_BE = "utf-16-be"
BOM = "\ufeff"

_NEWLINE = re.compile(r"\r\n|\n|\r")
# "[section]", trailing blanks, then the line end or a comment.
_SECTION = re.compile(r"[ \t]*\[([A-Za-z][A-Za-z0-9]*)\][ \t]*(#.*)?")
# "key", blanks, "=", blanks; the value follows.
_KEY = re.compile(r"([ \t]*)([A-Za-z][A-Za-z0-9]*)([ \t]*=[ \t]*)")
# Escapes WSL reads in a value, and what they stand for.
_ESCAPES = {"\\": "\\", '"': '"', "b": "\b", "n": "\n", "t": "\t"}
# A value written without quotes when it holds only these (quotes otherwise).
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9._,:/+=@-]*")


class ConfigError(ValueError):
    """A WSL configuration file gotune cannot read, or a change it refuses to write."""


@dataclass(frozen=True)
class Entry:
    """One ``key = value`` line (with its continuation lines)."""

    section: str  # as written ("" before the first section)
    key: str  # as written
    value: str  # as WSL reads it: quotes dropped, escapes undone, trailing blanks trimmed
    first: int  # index of its first physical line
    last: int  # index of its last physical line (continuations)

    @property
    def name(self) -> str:
        """``section.key`` in lower case: how WSL matches it."""
        return f"{self.section}.{self.key}".lower() if self.section else self.key.lower()


@dataclass(frozen=True)
class Problem:
    """A line WSL would not read."""

    line: int  # 1-based
    text: str
    why: str

    def __str__(self) -> str:
        return f"line {self.line} ({self.text.strip()[:60]!r}): {self.why}"


@dataclass
class Config:
    """A parsed file: its physical lines and line ends, sections, entries, problems."""

    lines: list[str]
    ends: list[str]  # each line's end ("\r\n", "\n", "\r", or "" for an unterminated last)
    bom: bool = False
    sections: list[tuple[str, int]] = field(default_factory=list)  # (name, line index)
    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def values(self) -> dict[str, str]:
        """``section.key`` (lower case) -> the value WSL reads: the first one set."""
        out: dict[str, str] = {}
        for e in self.entries:
            out.setdefault(e.name, e.value)
        return out

    def duplicates(self) -> dict[str, list[int]]:
        """Keys set more than once -> the 1-based lines that set them (WSL reads the first)."""
        seen: dict[str, list[int]] = {}
        for e in self.entries:
            seen.setdefault(e.name, []).append(e.first + 1)
        return {k: v for k, v in seen.items() if len(v) > 1}

    def newline(self, default: str = "\n") -> str:
        """The line end the file uses (its first one), else ``default``."""
        return next((e for e in self.ends if e), default)

    def text(self) -> str:
        body = "".join(line + end for line, end in zip(self.lines, self.ends, strict=True))
        return (BOM if self.bom else "") + body


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding) of a file's bytes; a byte order mark stays in the text as U+FEFF.

    Raises ConfigError for anything but UTF-8 or UTF-16 with a byte order mark.
    """
    if data.startswith(b"\xff\xfe"):
        encoding = UTF16_LE
    elif data.startswith(b"\xfe\xff"):
        encoding = UTF16_BE
    else:
        encoding = UTF8
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 or UTF-16 text (byte {exc.start})") from None
    if "\0" in text:
        raise ConfigError("holds NUL characters: not a text file")
    return text, encoding


def encode(text: str, encoding: str) -> bytes:
    """The bytes of ``text`` in ``encoding`` (a leading U+FEFF is the byte order mark)."""
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise ConfigError(f"cannot be written as {encoding}: {exc.reason}") from None


def _split(text: str) -> tuple[list[str], list[str]]:
    lines: list[str] = []
    ends: list[str] = []
    pos = 0
    for m in _NEWLINE.finditer(text):
        lines.append(text[pos : m.start()])
        ends.append(m.group())
        pos = m.end()
    if pos < len(text):
        lines.append(text[pos:])
        ends.append("")
    return lines, ends


@dataclass(frozen=True)
class Value:
    """What follows ``key =`` on a line, as WSL reads it."""

    text: str  # quotes dropped, escapes undone, trailing blanks trimmed
    continues: bool = False  # a backslash ends the line: the next line goes on
    problem: str | None = None  # why WSL rejects the line
    comment: int | None = None  # where an unquoted "#" starts a comment


def read_value(raw: str) -> Value:
    """The value in ``raw`` (what follows ``key =`` on the line)."""
    out: list[str] = []
    trimmed = 0
    quoted = False
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == '"':
            quoted = not quoted
        elif ch == "\\":
            if i + 1 == len(raw):
                return Value("".join(out[:trimmed]), continues=True)
            nxt = raw[i + 1]
            if nxt not in _ESCAPES:
                return Value("", problem=f"WSL rejects the escape \\{nxt}")
            out.append(_ESCAPES[nxt])
            i += 1
        elif ch == "#" and not quoted:
            return Value("".join(out[:trimmed]), comment=i)
        else:
            out.append(ch)
        if ch not in " \t":
            trimmed = len(out)
        i += 1
    if quoted:
        return Value("", problem="a double quote is not closed")
    return Value("".join(out[:trimmed]))


def parse(text: str) -> Config:
    """Parse a WSL configuration file's text (a leading U+FEFF is taken as its byte order mark)."""
    bom = text.startswith(BOM)
    lines, ends = _split(text[1:] if bom else text)
    conf = Config(lines, ends, bom=bom)
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        body = line.lstrip(" \t")
        if body == "" or body.startswith("#"):
            i += 1
            continue
        m = _SECTION.fullmatch(line)
        if m:
            section = m.group(1)
            conf.sections.append((section, i))
            i += 1
            continue
        if body.startswith("["):
            conf.problems.append(Problem(i + 1, line, "not a [section] of letters and digits"))
            i += 1
            continue
        k = _KEY.match(line)
        if not k:
            conf.problems.append(Problem(i + 1, line, "not 'key = value' (a key is a letter, "
                                         "then letters and digits)"))
            i += 1
            continue
        first = i
        value = read_value(line[k.end() :])
        text = value.text
        while value.continues and i + 1 < len(lines):
            i += 1
            value = read_value(lines[i])
            text += value.text
        if value.problem is not None:
            conf.problems.append(Problem(first + 1, line, value.problem))
        else:
            conf.entries.append(Entry(section, k.group(2), text, first, i))
        i += 1
    return conf


def format_value(value: str, quote: bool = False) -> str:
    """``value`` as it is written after ``=``: plain when it can be, else in double quotes."""
    if not quote and _PLAIN_VALUE.fullmatch(value):
        return value
    escaped = "".join("\\" + c if c in '\\"' else c for c in value)
    for ch, esc in (("\n", "\\n"), ("\t", "\\t"), ("\b", "\\b")):
        escaped = escaped.replace(ch, esc)
    return f'"{escaped}"'


def _split_name(name: str) -> tuple[str, str]:
    section, _, key = name.partition(".")
    if not key or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", section) or not re.fullmatch(
        r"[A-Za-z][A-Za-z0-9]*", key
    ):
        raise ConfigError(f"{name!r} is not a section.key WSL reads")
    return section, key


def _separator(conf: Config) -> str:
    """How this file writes ``=``: the first key line's spacing, else WSL's own ``=``."""
    for e in conf.entries:
        m = _KEY.match(conf.lines[e.first])
        if m:
            return m.group(3)
    return "="


def merge(
    text: str,
    wanted: Mapping[str, str],
    quoted: frozenset[str] = frozenset(),
    newline: str | None = None,
    keep_bom: bool = True,
    default_newline: str = "\n",
) -> str:
    """``text`` with each ``section.key`` of ``wanted`` set; every other byte kept.

    + text: the file's text ("" for a new file)
    + wanted: ``section.key`` (as it is to be written) -> value
    + quoted: keys whose values are always written in double quotes (docs' style)
    + newline: write every line end as this (None: keep the file's)
    + keep_bom: keep a byte order mark (False: drop it)
    + default_newline: line end of a new file

    Raises ConfigError when the file holds a line WSL would not read.
    """
    conf = parse(text)
    if conf.problems:
        raise ConfigError(f"holds {len(conf.problems)} line(s) WSL would not read: "
                          f"{conf.problems[0]}")
    nl = newline or conf.newline(default_newline)
    sep = _separator(conf)
    quote = {q.lower() for q in quoted}
    replaced: dict[int, str] = {}  # first line of an entry -> its new line
    dropped: set[int] = set()  # continuation lines of a replaced entry
    inserts: dict[int, list[str]] = {}  # after this line -> new key lines
    appended: dict[str, list[str]] = {}  # a new section -> its key lines
    for name, value in wanted.items():
        section, key = _split_name(name)
        shown = format_value(value, name.lower() in quote)
        hit = next((e for e in conf.entries if e.name == name.lower()), None)
        if hit is not None:
            if hit.value != value:
                lead = _KEY.match(conf.lines[hit.first])
                assert lead is not None  # parse() made it an entry
                tail = _comment_tail(conf.lines[hit.first]) if hit.last == hit.first else ""
                replaced[hit.first] = f"{lead.group(1)}{lead.group(2)}{lead.group(3)}{shown}{tail}"
                dropped.update(range(hit.first + 1, hit.last + 1))
            continue
        block = _first_block(conf, section)
        if block is None:
            appended.setdefault(section, []).append(f"{key}{sep}{shown}")
        else:
            inserts.setdefault(block, []).append(f"{key}{sep}{shown}")
    out: list[list[str]] = []
    for i, (line, end) in enumerate(zip(conf.lines, conf.ends, strict=True)):
        if i in dropped:
            continue
        out.append([replaced.get(i, line), end or (nl if i in inserts else "")])
        out += [[new, nl] for new in inserts.get(i, [])]
    for section, keys in appended.items():
        if out and not out[-1][1]:
            out[-1][1] = nl
        if out and out[-1][0].strip():
            out.append(["", nl])  # a blank line before a new section
        out += [[f"[{section}]", nl], *([k, nl] for k in keys)]
    if newline:
        out = [[line, newline if end else end] for line, end in out]
    body = "".join(line + end for line, end in out)
    return (BOM if conf.bom and keep_bom else "") + body


def _comment_tail(line: str) -> str:
    """The blanks and ``# comment`` after a one-line value, kept when the value changes."""
    k = _KEY.match(line)
    raw = line[k.end() :] if k else ""
    at = read_value(raw).comment
    if at is None:
        return ""
    return raw[len(raw[:at].rstrip(" \t")) :]


def _first_block(conf: Config, section: str) -> int | None:
    """The line after which a new key of ``section`` goes: the last entry (else the header)
    of the section's first block; None when the file has no such section."""
    starts = [(name, i) for name, i in conf.sections]
    for n, (name, start) in enumerate(starts):
        if name.lower() != section.lower():
            continue
        end = starts[n + 1][1] if n + 1 < len(starts) else len(conf.lines)
        inside = [e.last for e in conf.entries if start < e.first < end]
        return max(inside) if inside else start
    return None


def check_merge(before: str, after: str, wanted: Mapping[str, str]) -> list[str]:
    """What is wrong with ``after`` as the merge of ``wanted`` into ``before`` ([]: nothing).

    Every line must be one WSL reads; each wanted key must read as wanted; every
    other key must read as it did before, and none may appear or vanish.
    """
    new = parse(after)
    problems = [str(p) for p in new.problems]
    have = new.values()
    want = {k.lower(): v for k, v in wanted.items()}
    for name, value in want.items():
        if have.get(name) != value:
            problems.append(f"{name} reads {have.get(name)!r}, wanted {value!r}")
    old = parse(before).values()
    for name in sorted(set(old) | set(have)):
        if name not in want and old.get(name) != have.get(name):
            problems.append(f"{name} changed from {old.get(name)!r} to {have.get(name)!r}")
    return problems
