"""The GOCACHEPROG helper for tests and benchmarks: built from gotune's template by the venv's go.

``build_helper`` renders ``templates/buildcache-cacheprog.go.j2`` as apply does
(``operations/buildcache.py``) and builds it with the same flags, into a directory of
the caller's; ``go_env`` is Go's defaults plus what a test sets (``GOENV=off``: no
file of this machine's users applies); ``hello_module`` writes a small program;
``read_stats`` reads the helper's one JSON line per go command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from gotune.operations.buildcache import helper_sources

GO = Path(sys.executable).parent / "go"
# The helper's own compile cache, kept between test sessions (the helper is built from
# scratch in each one; its standard library packages need not be).
BUILD_CACHE_NAME = "gotune-cacheprog-build-cache"


def go_env(gocache: Path, **extra: str) -> dict[str, str]:
    """Go's defaults for a test: GOENV off, offline, this GOCACHE; ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update({"GOENV": "off", "GOTOOLCHAIN": "local", "GOFLAGS": "", "GOPROXY": "off",
                "GOSUMDB": "off", "GOCACHE": str(gocache), "PATH": f"{GO.parent}:{env['PATH']}"})
    env.update(extra)
    return env


def build_helper(dest: Path, build_cache: Path) -> Path:
    """The helper built into ``dest`` (its source beside it); ``build_cache`` is go's cache."""
    src = dest / "src"
    src.mkdir(parents=True, exist_ok=True)
    for name, content in helper_sources().items():
        (src / name).write_text(content)
    binary = dest / "gotune-cacheprog"
    env = go_env(build_cache, CGO_ENABLED="0", GOPATH=str(dest / "gopath"))
    subprocess.run([str(GO), "build", "-trimpath", "-ldflags=-s", "-o", str(binary), "."],
                   cwd=src, env=env, check=True, capture_output=True, timeout=1800)
    return binary


def hello_module(root: Path, name: str = "hello", imports: tuple[str, ...] = ("fmt",)) -> Path:
    """A module with one main package that prints its name."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "go.mod").write_text(f"module example.com/{name}\n\ngo 1.24\n")
    lines = "\n".join(f'\t"{p}"' for p in sorted({"fmt", *imports}))
    uses = "".join(f"var _ = {p.rsplit('/', 1)[-1]}.{USES[p]}\n" for p in imports if p in USES)
    (root / "main.go").write_text(
        f"package main\n\nimport (\n{lines}\n)\n\n{uses}\n"
        f'func main() {{ fmt.Println("{name}") }}\n'
    )
    return root


# A name to use from each package a test may import (go refuses unused imports).
USES = {"strings": "Fields", "sort": "Strings", "encoding/json": "Marshal",
        "net/url": "Parse", "text/template": "New"}


def read_stats(path: Path) -> list[dict[str, Any]]:
    """The helper's stats lines, one per go command (``GOTUNE_CACHEPROG_STATS``)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
