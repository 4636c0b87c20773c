"""What gotune left on a host for undo, and what overrides its GOENV settings.

Paired with ``operations/state.py`` (which writes the undo records) and
``operations/undo.py`` (which replays them).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from pyinfra.api import FactBase

UNDO_DIR = "/var/lib/gotune/undo"
RECORD_KINDS = ("files", "created", "moves", "mounts", "units", "packages")


@dataclass
class UndoRecord:
    """The parsed undo directory of one host (see ``operations/state.py`` for the layout)."""

    files: dict[str, bool] = field(default_factory=dict)  # path -> existed before (False: absent)
    created: list[str] = field(default_factory=list)
    moves: list[tuple[str, str, str, str]] = field(default_factory=list)  # user, key, from, to
    mounts: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    packages: list[tuple[str, str]] = field(default_factory=list)  # tool, package

    def empty(self) -> bool:
        return not (
            self.files or self.created or self.moves or self.mounts or self.units or self.packages
        )


def _unhex(text: str) -> str:
    return bytes.fromhex(text).decode(errors="replace")


class UndoRecords(FactBase[UndoRecord]):
    """
    Returns the changes gotune recorded on the host, oldest state first:

    .. code:: python

        UndoRecord(files={"/etc/fstab": True, "/etc/profile.d/gotune.sh": False},
                   created=["/usr/local/go-1.22.3"],
                   moves=[("alice", "GOMODCACHE", "/home/alice/go/pkg/mod",
                           "/data/gotune/alice/mod")],
                   mounts=["/var/cache/gotune/tmpfs/alice"], units=[], packages=[])
    """

    default = UndoRecord

    def command(self) -> str:
        kinds = " ".join(RECORD_KINDS)
        return (
            f"! test -d {UNDO_DIR} || {{ cd {UNDO_DIR} && for k in {kinds}; do "
            'test -d "$k" || continue; for f in "$k"/*; do '
            'test -e "$f" || test -L "$f" || continue; '
            'if [ "$k" = files ]; then echo "$f"; '
            'else printf \'%s %s\\n\' "$f" "$(head -n 1 "$f")"; fi; done; done; }'
        )

    def process(self, output: list[str]) -> UndoRecord:
        rec = UndoRecord()
        for line in output:
            name, _, value = line.strip().partition(" ")
            kind, _, base = name.partition("/")
            try:
                if kind == "files":
                    absent = base.endswith(".absent")
                    rec.files[_unhex(base.removesuffix(".absent"))] = not absent
                elif kind == "created":
                    rec.created.append(_unhex(base))
                elif kind == "moves":
                    user, _, key = base.partition(".")
                    src, dst = value.split()
                    rec.moves.append((user, key, _unhex(src), _unhex(dst)))
                elif kind == "mounts":
                    rec.mounts.append(_unhex(base))
                elif kind == "units":
                    rec.units.append(base)
                elif kind == "packages":
                    tool, _, package = value.partition(" ")
                    rec.packages.append((tool, package))
            except ValueError:
                continue  # a damaged record is skipped, never guessed at
        return rec


# Shell start-up files that can export Go settings over GOENV (GOENV loses to the environment).
SHELL_FILES = (
    ".profile",
    ".bash_profile",
    ".bash_login",
    ".bashrc",
    ".zshenv",
    ".zprofile",
    ".zshrc",
    ".config/fish/config.fish",
)
OVERRIDDEN = ("GOCACHE", "GOMODCACHE", "GOPROXY", "GOTMPDIR")


class ShellExports(FactBase[list[str]]):
    """
    Returns the lines of a user's shell files (and /etc/environment) that set Go settings:

    .. code:: python

        ["/home/alice/.bashrc:12:export GOCACHE=/tmp/gocache"]
    """

    default = list

    def command(self, home: str) -> str:
        files = " ".join(shlex.quote(f"{home}/{f}") for f in SHELL_FILES)
        names = "|".join(OVERRIDDEN)
        pattern = shlex.quote(
            f"^[[:space:]]*(export[[:space:]]+|set[[:space:]]+-[a-zA-Z]*x[a-zA-Z]*[[:space:]]+)?"
            f"({names})([=[:space:]])"
        )
        return (
            f"for f in {files} /etc/environment; do "
            f'test -f "$f" && grep -nE {pattern} "$f" | '
            'while IFS= read -r l; do printf \'%s:%s\\n\' "$f" "$l"; done; done; true'
        )

    def process(self, output: list[str]) -> list[str]:
        return [line.strip() for line in output if line.strip()]
