"""windows/gotune-wsl.ps1, the Windows entry, checked without Windows.

There is no Windows and no PowerShell here. A fake ``wsl.exe`` would not help: the
script itself can only run under PowerShell, and a mock of PowerShell would test the
mock. So the script is read, not run, through a real PowerShell grammar from PyPI
(tree-sitter-powershell):

- it parses with no ERROR or MISSING node, and a broken copy does not (so a syntax
  error fails CI);
- every native command it can run is in its one table, ``$Commands``; each ``wsl.exe``
  entry uses only documented flags; each step function runs only its own entries;
- nothing in it needs PowerShell 7 (``??``, ``?:``, ``&&``/``||``), since Windows
  ships 5.1;
- the commands that install gotune in the distro are the README's.

Every decision about the machine is made by gotune inside the distro, where the rest
of the suite tests it; the script only runs commands and checks their exit status.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
import tree_sitter_powershell
from tree_sitter import Language, Node, Parser, Tree

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "windows" / "gotune-wsl.ps1"
README = ROOT / "README.md"

# wsl.exe's flags as documented: https://learn.microsoft.com/en-us/windows/wsl/basic-commands
# (install, list, status, shutdown, --distribution/--user) and `wsl --help`, whose text is
# localization/strings/en-US/Resources.resw in microsoft/WSL (--exec: "Execute the specified
# command without using the default Linux shell").
DOCUMENTED_WSL_FLAGS = {
    "--install",
    "--no-distribution",  # with --install, when WSL is not installed yet
    "--distribution",
    "-d",
    "--no-launch",  # with --install
    "--list",
    "-l",
    "--quiet",  # with --list: names only
    "-q",
    "--status",
    "--shutdown",
    "--user",
    "-u",
    "--exec",
    "-e",
}
# Flags followed by a value, and the values the script may give them.
WSL_FLAG_VALUES = {
    "--distribution": {"{Distro}"},
    "-d": {"{Distro}"},
    "--user": {"root"},
    "-u": {"root"},
}
PLACEHOLDERS = {"{Distro}", "{Source}", "{User}"}

# The steps the issue names, each a function of that name with its table entry.
STEPS = [
    "Test-Wsl",
    "Install-Wsl",
    "Test-Distro",
    "Install-Distro",
    "Get-DefaultUser",
    "Resolve-Source",
    "Test-Gotune",
    "Install-Gotune",
    "Invoke-GotuneApply",
    "Test-RestartNeeded",
    "Restart-Wsl",
    "Add-DefenderExclusions",
]
RUNNERS = {"Invoke-NativeCommand", "Read-NativeCommand"}

# PowerShell's own commands the script may use (all in Windows PowerShell 5.1). Anything
# else it invokes must be one of its functions; native programs only through the runners.
CMDLETS = {
    "Add-MpPreference",
    "ForEach-Object",
    "Get-Command",
    "Get-MpPreference",
    "Join-Path",
    "New-Object",
    "Out-Host",
    "Read-Host",
    "Resolve-Path",
    "Select-Object",
    "Set-StrictMode",
    "Test-Path",
    "Where-Object",
    "Write-Host",
    "Write-Verbose",
}

# The contract with the Linux side: the install layout the README shows, as root.
README_INSTALL = [
    "apt-get update",
    "apt-get install -y python3-venv git",
    "python3 -m venv /opt/gotune-venv",
    "/opt/gotune-venv/bin/pip install <source>",
    "ln -sf /opt/gotune-venv/bin/gotune /usr/local/bin/gotune",
]


@cache
def _parser() -> Parser:
    return Parser(Language(tree_sitter_powershell.language()))


def parse(source: str) -> Tree:
    return _parser().parse(source.encode())


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from walk(child)


def text(node: Node) -> str:
    assert node.text is not None
    return node.text.decode()


def syntax_problems(tree: Tree) -> list[str]:
    """Each ERROR or MISSING node, as 'line N: text'."""
    return [
        f"line {n.start_point[0] + 1}: {'missing' if n.is_missing else 'error'} {text(n)[:40]!r}"
        for n in walk(tree.root_node)
        if n.is_error or n.is_missing
    ]


def ps7_only(tree: Tree) -> list[str]:
    """Syntax Windows PowerShell 5.1 does not have: ``&&``/``||`` chains, ``??``, ``?:``."""
    found = []
    for n in walk(tree.root_node):
        if n.type == "pipeline_chain_tail":
            found.append(f"line {n.start_point[0] + 1}: pipeline chain {text(n)!r}")
        elif n.child_count == 0 and n.type not in ("comment",) and "string" not in n.type:
            token = text(n).strip()
            if token in {"&&", "||", "??", "??=", "?", "?."} or token.startswith("??"):
                found.append(f"line {n.start_point[0] + 1}: {token!r}")
    return found


def string_value(node: Node) -> str:
    """The value of a single-quoted (verbatim) PowerShell string literal."""
    raw = text(node)
    assert raw.startswith("'") and raw.endswith("'"), f"not a verbatim string: {raw}"
    return raw[1:-1].replace("''", "'")


def verbatim_strings(node: Node) -> set[str]:
    """The values of the single-quoted strings under node."""
    return {
        string_value(n)
        for n in walk(node)
        if n.type == "string_literal" and text(n).startswith("'")
    }


def command_name(command: Node) -> str | None:
    """A command's name; None for `& $variable ...`."""
    names = [c for c in command.children if c.type == "command_name"]
    return text(names[0]) if names else None


def _hash_entries(hash_literal: Node) -> Iterator[tuple[str, Node]]:
    body = next(c for c in hash_literal.children if c.type == "hash_literal_body")
    for entry in body.children:
        if entry.type != "hash_entry":
            continue
        key = text(entry.children[0]).strip("'")
        yield key, entry.children[2]


def _first(node: Node, node_type: str) -> Node:
    return next(n for n in walk(node) if n.type == node_type)


def command_table(tree: Tree) -> dict[str, dict[str, list[str]]]:
    """``$Commands``: step -> command name -> argument words, read from the syntax tree."""
    assignment = next(
        n
        for n in walk(tree.root_node)
        if n.type == "assignment_expression" and text(n.children[0]) == "$Commands"
    )
    table: dict[str, dict[str, list[str]]] = {}
    for step, value in _hash_entries(_first(assignment.children[2], "hash_literal_expression")):
        table[step] = {}
        for name, array in _hash_entries(_first(value, "hash_literal_expression")):
            kinds = {n.type for n in walk(array)}
            assert not kinds & {"variable", "expandable_string_literal", "sub_expression"}, (
                f"{step}/{name} is not plain words"
            )
            table[step][name] = [string_value(n) for n in walk(array) if n.type == "string_literal"]
    return table


def functions(tree: Tree) -> dict[str, Node]:
    return {
        text(_first(n, "function_name")): n
        for n in walk(tree.root_node)
        if n.type == "function_statement"
    }


def enclosing_function(node: Node) -> str | None:
    parent = node.parent
    while parent is not None:
        if parent.type == "function_statement":
            return text(_first(parent, "function_name"))
        parent = parent.parent
    return None


def command_words(command: Node) -> list[Node]:
    """The arguments of a command, without the separators."""
    elements = [c for c in command.children if c.type == "command_elements"]
    if not elements:
        return []
    return [c for c in elements[0].children if c.type != "command_argument_sep"]


def native_calls(tree: Tree) -> list[tuple[Node, str, str | None]]:
    """Each call of a runner: (node, step literal, command name literal or None)."""
    calls = []
    for n in walk(tree.root_node):
        if n.type != "command" or command_name(n) not in RUNNERS:
            continue
        words = command_words(n)
        step = string_value(_first(words[0], "string_literal"))
        name_literals = [x for x in walk(words[1]) if x.type == "string_literal"]
        calls.append((n, step, string_value(name_literals[0]) if name_literals else None))
    return calls


@pytest.fixture(scope="module")
def source() -> str:
    return SCRIPT.read_text()


@pytest.fixture(scope="module")
def tree(source: str) -> Tree:
    return parse(source)


@pytest.fixture(scope="module")
def table(tree: Tree) -> dict[str, dict[str, list[str]]]:
    return command_table(tree)


def test_script_parses_as_powershell(tree: Tree) -> None:
    assert syntax_problems(tree) == []


@pytest.mark.parametrize(
    "breakage",
    [
        ("function Test-Wsl {", "function Test-Wsl "),  # a body with no opening brace
        ("return ($result.ExitCode -eq 0)\n}", "return ($result.ExitCode -eq 0)\n"),  # unclosed
        ("'Restart WSL now? [y/N]'", "'Restart WSL now? [y/N]"),  # unterminated string
        ("@('wsl.exe', '--status')", "@('wsl.exe', '--status'"),  # unclosed array
    ],
    ids=["no-opening-brace", "unclosed-brace", "unterminated-string", "unclosed-array"],
)
def test_a_broken_copy_does_not_parse(source: str, breakage: tuple[str, str]) -> None:
    before, after = breakage
    assert source.count(before) == 1
    assert syntax_problems(parse(source.replace(before, after))) != []


def test_script_is_ascii(source: str) -> None:
    # Windows PowerShell 5.1 reads a script without a BOM in the ANSI code page.
    assert source.isascii()


def test_strict_and_stopping_on_errors(tree: Tree, source: str) -> None:
    top = next(text(n) for n in tree.root_node.children if n.type == "statement_list")
    assert "Set-StrictMode -Version Latest" in top
    assert re.search(r"^\$ErrorActionPreference = 'Stop'$", source, re.M)
    assert text(_first(tree.root_node, "param_block")).startswith("[CmdletBinding()]")
    params = {text(n) for n in walk(_first(tree.root_node, "param_block")) if n.type == "variable"}
    assert params >= {"$Distro", "$Source", "$Yes", "$DefenderExclusions"}


def test_nothing_needs_powershell_7(tree: Tree) -> None:
    assert ps7_only(tree) == []


@pytest.mark.parametrize(
    "snippet",
    ["$x = $a ?? 'b'", "$y = $c ? 1 : 2", "git status && echo ok", "git status || exit 1"],
)
def test_powershell_7_syntax_is_noticed(snippet: str) -> None:
    found = parse(snippet)
    assert ps7_only(found) or syntax_problems(found)


def test_the_table_holds_every_step(table: dict[str, dict[str, list[str]]]) -> None:
    assert list(table) == STEPS
    for step, entries in table.items():
        assert entries, step
        for name, argv in entries.items():
            assert len(argv) >= 2, f"{step}/{name}"
            for word in argv:
                braces = re.findall(r"\{[^}]*\}", word)
                assert not braces or (braces == [word] and word in PLACEHOLDERS), (
                    f"{step}/{name}: {word!r} is not a whole-word placeholder"
                )


def test_every_wsl_command_uses_documented_flags(table: dict[str, dict[str, list[str]]]) -> None:
    for step, entries in table.items():
        for name, argv in entries.items():
            if argv[0] != "wsl.exe":
                continue
            where = f"{step}/{name}: {' '.join(argv)}"
            # `--` would hand the Linux command line to $SHELL -c (microsoft/WSL#11635).
            assert "--" not in argv, where
            own = argv[1 : argv.index("--exec")] if "--exec" in argv else argv[1:]
            if "--exec" in argv:
                assert len(argv) > argv.index("--exec") + 1, where
            for i, word in enumerate(own):
                if word.startswith("-"):
                    assert word in DOCUMENTED_WSL_FLAGS, where
                    if word in WSL_FLAG_VALUES:
                        assert own[i + 1] in WSL_FLAG_VALUES[word], where
                else:
                    assert i > 0 and own[i - 1] in WSL_FLAG_VALUES, f"{where}: stray {word!r}"


def test_inside_the_distro_every_command_runs_without_a_shell(
    table: dict[str, dict[str, list[str]]],
) -> None:
    for step, entries in table.items():
        for name, argv in entries.items():
            if "{Distro}" in argv and argv[1] != "--install":
                assert "--exec" in argv, f"{step}/{name}"


def test_each_step_is_a_function_that_runs_only_its_own_commands(
    tree: Tree, table: dict[str, dict[str, list[str]]]
) -> None:
    defined = functions(tree)
    for step, entries in table.items():
        assert step in defined, f"no function {step}"
        literals = verbatim_strings(defined[step])
        for name in entries:
            assert name in literals, f"{step} never runs its {name}"
    calls = native_calls(tree)
    assert calls
    for node, caller, called in calls:
        assert enclosing_function(node) == caller, f"line {node.start_point[0] + 1}"
        assert caller in table and (called is None or called in table[caller]), (
            f"line {node.start_point[0] + 1}: {caller}/{called} is not in the table"
        )


def test_no_native_command_outside_the_table(tree: Tree) -> None:
    own = set(functions(tree))
    for n in walk(tree.root_node):
        if n.type != "command":
            continue
        line = n.start_point[0] + 1
        name = command_name(n)
        if name is None:  # `& $exe @rest`: only the two runners call programs
            assert enclosing_function(n) in RUNNERS, f"line {line}: {text(n)}"
            assert text(n).startswith("& $exe @rest"), f"line {line}: {text(n)}"
            continue
        assert name in own | CMDLETS, f"line {line}: {name} is not from the table"


def test_runners_check_the_exit_status_right_after_the_call(tree: Tree) -> None:
    defined = functions(tree)
    for runner in RUNNERS:
        body = text(defined[runner])
        after = body.split("& $exe @rest", 1)[1].splitlines()
        following = after[0] + "\n" + after[1]
        assert "$LASTEXITCODE" in following, runner


def test_install_commands_are_the_readme_layout(table: dict[str, dict[str, list[str]]]) -> None:
    install = table["Install-Gotune"]
    for name, argv in install.items():
        assert argv[1:6] == ["--distribution", "{Distro}", "--user", "root", "--exec"], name
    linux = [
        " ".join(argv[6:]).replace("{Source}", "<source>")
        for name, argv in install.items()
        if name != "RecordSource"
    ]
    assert linux == README_INSTALL
    readme = README.read_text()
    for command in README_INSTALL:
        assert f"`{command}`" in readme, command


def test_apply_and_restart_follow_the_contract_with_gotune(
    table: dict[str, dict[str, list[str]]],
) -> None:
    apply = table["Invoke-GotuneApply"]["Apply"]
    assert apply[1:6] == ["--distribution", "{Distro}", "--user", "root", "--exec"]
    assert apply[-5:] == ["gotune", "apply", "--yes", "--user", "{User}"]
    user = table["Get-DefaultUser"]["Name"]
    assert "--user" not in user and user[-2:] == ["id", "-un"]
    marker = table["Test-RestartNeeded"]["Marker"]
    assert marker[-3:] == ["test", "-e", "/run/gotune/wsl-restart-needed"]
    assert table["Restart-Wsl"]["Shutdown"] == ["wsl.exe", "--shutdown"]


def test_readme_shows_how_to_run_it() -> None:
    readme = README.read_text()
    assert "powershell -ExecutionPolicy Bypass -File windows\\gotune-wsl.ps1" in readme
    for flag in ("-Source", "-Yes", "-DefenderExclusions"):
        assert f"`{flag}" in readme, flag
