"""What `gotune mirror sync` reads from go.sum, go.mod and module lists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gotune.agent.mirror.sync import SourceError, Wanted, read_sources

GO_MOD = """module example.com/app // the app

go 1.22

require example.com/one v1.2.3

require (
\texample.com/BigCorp/Lib v1.1.0 // indirect
\t"example.com/quoted" v0.1.0
)

replace example.com/one => example.com/fork v1.2.4
replace example.com/local => ../local

exclude example.com/bad v0.0.1
retract v0.9.0
"""


def test_go_mod_requires_and_versioned_replacements_are_wanted(tmp_path: Path) -> None:
    path = tmp_path / "go.mod"
    path.write_text(GO_MOD)
    assert sorted(read_sources([path]), key=lambda w: w.module) == [
        Wanted("example.com/BigCorp/Lib", "v1.1.0", True),
        Wanted("example.com/fork", "v1.2.4", True),
        Wanted("example.com/one", "v1.2.3", True),
        Wanted("example.com/quoted", "v0.1.0", True),
    ]


def test_go_sum_go_mod_only_lines_want_no_zip_and_files_merge(tmp_path: Path) -> None:
    go_sum = tmp_path / "go.sum"
    go_sum.write_text("example.com/a v1.0.0/go.mod h1:x=\nexample.com/b v2.0.0+incompatible h1:y=\n"
                      "example.com/b v2.0.0+incompatible/go.mod h1:z=\n")
    listing = tmp_path / "mods.txt"
    listing.write_text("# wanted in full\nexample.com/a@v1.0.0\n\n")
    assert read_sources([go_sum]) == [Wanted("example.com/a", "v1.0.0", False),
                                      Wanted("example.com/b", "v2.0.0+incompatible", True)]
    merged = read_sources([go_sum, listing])
    assert Wanted("example.com/a", "v1.0.0", True) in merged and len(merged) == 2


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("go.sum", "example.com/a v1.0.0\n", "go.sum:1: not a go.sum line"),
        ("go.sum", "example.com/a v2.0.0 h1:x=\n", "needs a /v2 module path"),
        ("mods.txt", "example.com/a\n", "mods.txt:1: expected module@version"),
        ("mods.txt", "../../etc@v1.0.0\n", "mods.txt:1:"),
        ("go.mod", "require example.com/a\n", "go.mod:1: malformed require"),
        ("go.mod", "require example.com/a latest\n", "not canonical"),
    ],
)
def test_bad_lines_name_the_file_and_line(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SourceError, match=message.replace("(", r"\(")):
        read_sources([path])


def test_sync_with_a_bad_source_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "mods.txt"
    bad.write_text("not-a-module\n")
    cache = tmp_path / "cache"
    out = subprocess.run(
        [sys.executable, "-m", "gotune", "mirror", "sync", "--cache-dir", str(cache),
         "--upstream", "http://127.0.0.1:9", "--from", str(bad)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "mods.txt:1: expected module@version" in out.stderr
    assert not cache.exists()
