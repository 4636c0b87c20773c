"""The command line as a user meets it: help, bad input, honest refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gotune.cli import build_parser


def gotune(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gotune", *args], capture_output=True, text=True, timeout=60
    )


def test_help_lists_every_command_of_the_contract() -> None:
    out = gotune("--help")
    assert out.returncode == 0
    for command in ("facts", "plan", "apply", "verify", "undo", "mirror", "wear"):
        assert command in out.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["facts", "--help"], ["plan", "--help"], ["apply", "--help"], ["verify", "--help"],
        ["undo", "--help"], ["mirror", "serve", "--help"], ["mirror", "sync", "--help"],
        ["mirror", "status", "--help"], ["wear", "--help"],
    ],
)
def test_every_command_has_help_and_json(argv: list[str]) -> None:
    out = gotune(*argv)
    assert out.returncode == 0, out.stderr
    assert "--json" in out.stdout


def test_unknown_flag_is_one_line_and_exit_2() -> None:
    out = gotune("plan", "--bogus")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert "unrecognized arguments: --bogus" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("argv", [
    ["rollout", "inv.py", "--dry", "--json", "--parallel", "abc"],
    ["rollout", "inv.py", "--dry", "--json", "--gate", "bogus"],
    ["plan", "--json", "--bogus"],
    ["nosuchcommand", "--json"],
])  # fmt: skip
def test_a_refused_command_line_is_json_too_when_json_is_asked(argv: list[str]) -> None:
    out = gotune(*argv)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    error = json.loads(out.stdout)["error"]
    assert error and out.stderr == f"gotune: {error}\n" and "--help" in error


def test_missing_inventory_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    out = gotune("undo", str(missing))
    assert out.returncode == 1
    assert out.stderr.strip() == f"gotune: cannot read inventory {missing}: no such file"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("hosts = [\n", "syntax error on line 1"),
        ("hosts = [1 / 0]\n", "ZeroDivisionError: division by zero"),
        ("hosts = []\n", "has no hosts"),
    ],
)
def test_broken_inventory_is_one_line_without_traceback(
    tmp_path: Path, source: str, expected: str
) -> None:
    inv = tmp_path / "inv.py"
    inv.write_text(source)
    out = gotune("undo", str(inv), "--json")
    assert out.returncode == 1
    assert expected in out.stderr
    assert "Traceback" not in out.stderr
    assert expected in json.loads(out.stdout)["error"]


def test_parser_declares_the_contract_flags() -> None:
    parser = build_parser()
    args = parser.parse_args(["apply", "inv.py", "--dry", "--yes", "--json"])
    assert (args.inventory, args.dry, args.yes, args.json) == ("inv.py", True, True, True)
    args = parser.parse_args(["facts", "--sysroot", "/x", "--json"])
    assert args.sysroot == "/x"


def test_undo_has_no_user_flag_it_would_ignore() -> None:
    # Undo replays every record of a host; a --user it silently ignored would
    # let someone believe they undid one developer's setup only.
    out = gotune("undo", "inv.py", "--user", "dev")
    assert out.returncode == 2 and "unrecognized arguments: --user dev" in out.stderr
    assert build_parser().parse_args(["plan", "inv.py", "--user", "dev"]).user == "dev"


def test_an_inventory_file_runs_once_so_the_hosts_checked_are_the_hosts_used(
    tmp_path: Path,
) -> None:
    """An inventory file is code: loaded twice (once to check, once to connect), one that
    answers differently the second time would have its unchecked hosts connected to."""
    count = tmp_path / "loads"
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        "from pathlib import Path\n"
        f"p = Path({str(count)!r})\n"
        "n = int(p.read_text()) if p.exists() else 0\n"
        "p.write_text(str(n + 1))\n"
        "hosts = [('checked', {'ssh_hostname': '127.0.0.1', 'ssh_port': 1,"
        " 'gotune_users': ['dev']})] if n == 0 else [('unchecked', {})]\n"
    )
    for command in ("plan", "facts"):
        count.unlink(missing_ok=True)
        out = gotune(command, str(inventory), "--json")
        assert count.read_text() == "1", (command, out.stdout, out.stderr)
        assert "unchecked" not in out.stdout + out.stderr
        assert "checked" in out.stdout + out.stderr


@pytest.mark.parametrize("name", ["a" * 300, "dev\udcff01"])
def test_a_host_name_no_resolver_takes_is_refused_before_connecting(
    tmp_path: Path, name: str
) -> None:
    inventory = tmp_path / "inventory.py"
    inventory.write_text(f"hosts = [{name!r}]\n")
    out = gotune("plan", str(inventory), "--json")
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "is not a host name or address" in json.loads(out.stdout)["error"]


def test_inventory_mistakes_are_named_where_they_are(tmp_path: Path) -> None:
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "all.py").write_text('gotune_users = ["dev"\n')
    (tmp_path / "fleet.py").write_text('hosts = ["h1"]\n')
    out = gotune("plan", str(tmp_path / "fleet.py"), "--json")
    assert out.returncode == 1
    assert f"syntax error on line 1 of {tmp_path}/group_data/all.py" in out.stderr
    out = gotune("plan", "a,,b", "--json")
    assert out.returncode == 1 and "has an empty host name" in json.loads(out.stdout)["error"]
    # pyinfra itself fails on "" with an IndexError; gotune says what it is.
    (tmp_path / "empty.py").write_text('hosts = ["h1", ""]\n')
    out = gotune("plan", str(tmp_path / "empty.py"), "--json")
    assert out.returncode == 1 and "has an empty host name" in json.loads(out.stdout)["error"]
    # An IndexError of the inventory's own code is reported as it is.
    (tmp_path / "own.py").write_text('hosts = ["h1"][1:][0]\n')
    out = gotune("plan", str(tmp_path / "own.py"), "--json")
    assert "IndexError: list index out of range" in json.loads(out.stdout)["error"]


def test_a_port_that_answers_but_is_not_ssh_is_one_line(tmp_path: Path) -> None:
    """paramiko logs the failed banner with a traceback; gotune's one line says it all."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:
        with server:
            for _ in range(3):
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    conn.sendall(b"HTTP/1.0 400 not ssh\r\n\r\n")

    threading.Thread(target=answer, daemon=True).start()
    inventory = tmp_path / "inventory.py"
    inventory.write_text(f"hosts = [('h1', {{'ssh_hostname': '127.0.0.1', 'ssh_port': {port}}})]\n")
    out = gotune("plan", str(inventory), "--json")
    server.close()
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert "SSH protocol banner" in json.loads(out.stdout)["error"]
