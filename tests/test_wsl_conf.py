"""WSL's configuration format: read as WSL reads it, merged without touching the rest.

The files are what people have on their Windows PCs: written by Notepad (UTF-8 with a
byte order mark, CRLF, or "Unicode" UTF-16), by PowerShell, by hand with a section
twice, keys WSL does not know, comments after values, a key set twice. Property tests
add hostile text: whatever the file, a merge either refuses or keeps every other key
reading as it did and is a fixed point.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gotune.agent.wslconf import (
    BOM,
    UTF8,
    UTF16_LE,
    ConfigError,
    check_merge,
    decode,
    encode,
    merge,
    parse,
)

SIZING = {"wsl2.memory": "24GB", "wsl2.processors": "16",
          "experimental.autoMemoryReclaim": "gradual"}  # fmt: skip

NOTEPAD = (
    "\ufeff# Settings for WSL 2, see https://aka.ms/wslconfig\r\n"
    "[wsl2]\r\n"
    "memory=8GB  # the laptop is small\r\n"
    "kernelCommandLine = \"sysctl.vm.swappiness=10\"\r\n"
    "swapFile=C:\\\\temp\\\\wsl-swap.vhdx\r\n"
    "futureKey=whatever WSL adds next\r\n"
    "\r\n"
    "[experimental]\r\n"
    "sparseVhd=true\r\n"
    "\r\n"
    "[WSL2]\r\n"
    "Memory=2GB\r\n"
    "nestedVirtualization=false\r\n"
)


def test_a_notepad_wslconfig_keeps_its_bom_crlf_comments_and_unknown_keys() -> None:
    new = merge(NOTEPAD, SIZING)
    assert new.startswith(BOM) and "\n" not in new.replace("\r\n", "")
    assert "memory=24GB  # the laptop is small\r\n" in new
    # The later [WSL2] block and its second memory stay: WSL reads the first one.
    assert "[WSL2]\r\nMemory=2GB\r\n" in new
    assert 'kernelCommandLine = "sysctl.vm.swappiness=10"' in new
    assert "futureKey=whatever WSL adds next" in new and "sparseVhd=true" in new
    assert "processors=16\r\n" in new and "autoMemoryReclaim=gradual\r\n" in new
    assert check_merge(NOTEPAD, new, SIZING) == []
    assert parse(new).values()["wsl2.swapfile"] == "C:\\temp\\wsl-swap.vhdx"


def test_new_keys_go_to_the_first_block_of_their_section_and_new_sections_to_the_end() -> None:
    new = merge(NOTEPAD, SIZING)
    lines = new.split("\r\n")
    assert lines.index("processors=16") < lines.index("[experimental]")
    assert lines.index("autoMemoryReclaim=gradual") < lines.index("[WSL2]")
    fresh = merge("[boot]\nsystemd=true", {"interop.appendWindowsPath": "false"})
    assert fresh == "[boot]\nsystemd=true\n\n[interop]\nappendWindowsPath=false\n"


def test_a_merge_is_a_fixed_point_and_changes_nothing_when_the_keys_are_set() -> None:
    once = merge(NOTEPAD, SIZING)
    assert merge(once, SIZING) == once
    assert merge(NOTEPAD, {"wsl2.memory": "8GB"}) == NOTEPAD


def test_a_new_wslconfig_is_written_with_windows_line_ends() -> None:
    new = merge("", SIZING, default_newline="\r\n")
    assert new == ("[wsl2]\r\nmemory=24GB\r\nprocessors=16\r\n\r\n[experimental]\r\n"
                   "autoMemoryReclaim=gradual\r\n")  # fmt: skip


def test_wsl_conf_loses_its_bom_and_crlf_and_quotes_automount_options_like_the_docs() -> None:
    text = "\ufeff[automount]\r\noptions = uid=1000,gid=1000\r\n"
    new = merge(text, {"automount.options": "metadata,uid=1000,gid=1000", "boot.systemd": "true"},
                quoted=frozenset({"automount.options"}), newline="\n", keep_bom=False)
    assert new == ('[automount]\noptions = "metadata,uid=1000,gid=1000"\n\n'
                   "[boot]\nsystemd = true\n")  # fmt: skip


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("[wsl2", "not a [section]"),
        ("[wsl 2]", "not a [section]"),
        ("memory 8GB", "not 'key = value'"),
        ("auto_memory=1", "not 'key = value'"),
        ("; a comment in another dialect", "not 'key = value'"),
        ("kernel=C:\\Users\\me\\bzImage", "escape \\U"),
        ('swap="4GB', "not closed"),
    ],
)
def test_a_line_wsl_would_not_read_is_named_and_nothing_is_merged(line: str, why: str) -> None:
    text = f"[wsl2]\nmemory=4GB\n{line}\n"
    (problem,) = parse(text).problems
    assert problem.line == 3 and why in str(problem)
    with pytest.raises(ConfigError, match="line 3"):
        merge(text, SIZING)


def test_values_read_as_wsl_reads_them() -> None:
    conf = parse('[a]\nx = "  spaced # not a comment "  # a comment\ny=1\\\n2\nz=tab\\there\n')
    assert conf.values() == {"a.x": "  spaced # not a comment ", "a.y": "12", "a.z": "tab\there"}
    assert parse("[wsl2]\nmemory=1GB\nMEMORY=2GB\n").duplicates() == {"wsl2.memory": [2, 3]}


def test_utf16_and_utf8_files_round_trip_byte_for_byte() -> None:
    for raw in (NOTEPAD.encode(UTF16_LE), NOTEPAD.encode(UTF8), b"[wsl2]\nmemory=4GB"):
        text, encoding = decode(raw)
        assert encode(text, encoding) == raw
    with pytest.raises(ConfigError, match="not UTF-8"):
        decode(b"[wsl2]\nmemory=\xff\xfe4GB\n")


def test_check_merge_catches_a_key_that_vanished_or_reads_otherwise() -> None:
    before = "[wsl2]\nmemory=4GB\nswap=0\n"
    assert check_merge(before, "[wsl2]\nmemory=24GB\n", {"wsl2.memory": "24GB"}) == [
        "wsl2.swap changed from '0' to None"]
    assert check_merge(before, "[wsl2]\nmemory=2GB\nswap=0\n", {"wsl2.memory": "24GB"}) == [
        "wsl2.memory reads '2GB', wanted '24GB'"]


_LINE = st.one_of(
    st.sampled_from(["", "# note", "[wsl2]", "[experimental]", "[WSL2]", "memory=4GB",
                     "swap = 0 # off", 'kernelCommandLine = "a=b c"', "processors=2",
                     "autoMemoryReclaim=dropcache", "[boot]", "  indented=yes"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"),
            max_size=20),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_LINE, max_size=12), newline=st.sampled_from(["\n", "\r\n"]),
       bom=st.booleans())  # fmt: skip
def test_any_file_either_refuses_or_merges_keeping_every_other_key(
    lines: list[str], newline: str, bom: bool
) -> None:
    text = (BOM if bom else "") + newline.join(lines)
    try:
        new = merge(text, SIZING)
    except ConfigError:
        assert parse(text).problems
        return
    assert check_merge(text, new, SIZING) == []
    assert merge(new, SIZING) == new
    assert new.startswith(BOM) == bom
