"""The numactl wrapper script never breaks the tool it stands in for.

These run the rendered wrapper with this machine's /bin/sh and its real numactl
(one NUMA node here). Where a binding must *fail* at bind time on this machine, a
stand-in ``numactl`` that exits 1 is put on PATH (the test says so); the real
failure on a recorded 4-node machine is tested on a sandbox host in
test_numa_sandbox.py.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from gotune.operations.numa import profile_snippet, wrapper_script
from gotune.plan.numa import WRAPPER_DIR

NUMACTL = shutil.which("numactl")
needs_numactl = pytest.mark.skipif(NUMACTL is None, reason="numactl is not installed")

# A tool that logs each call (argc, then argv, NUL-separated), echoes stdin, and
# exits with the status given in $FAKE_EXIT, after printing its NUMA policy.
TOOL = r"""#!/bin/sh
printf '%s\0' "$#" "$@" >> "$CALLS"
cat
numactl --show 2>/dev/null | grep -E '^(policy|preferred node|cpubind):' >&2
exit "${FAKE_EXIT:-0}"
"""

HOSTILE = [
    "build",
    "-o",
    "a b",
    "",
    "'q'",
    '"dq"',
    "$(touch /tmp/pwned)",
    "*",
    "line\nbreak",
    "--",
    "-x",
]


def _exe(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A wrapper dir, a real-tool dir and a bin dir with sh basics (for PATHs without /usr/bin)."""
    dirs = {name: tmp_path / name for name in ("wrap", "real", "basics")}
    for d in dirs.values():
        d.mkdir()
    _exe(dirs["real"] / "fake", TOOL)
    for tool in ("cat", "grep", "true"):
        found = shutil.which(tool)
        assert found
        (dirs["basics"] / tool).symlink_to(found)
    dirs["calls"] = tmp_path / "calls"
    return dirs


def _wrapper(
    layout: dict[str, Path], args: list[str], nodes: list[int], recorded: str | None = None
) -> Path:
    text = wrapper_script("fake", args, nodes, "test", recorded, bin_dir=str(layout["wrap"]))
    return _exe(layout["wrap"] / "fake", text)


def _run(
    layout: dict[str, Path],
    path: str,
    argv: list[str],
    stdin: str = "in\n",
    exit_code: int = 0,
    debug: bool = True,
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "CALLS": str(layout["calls"]), "FAKE_EXIT": str(exit_code)}
    if debug:
        env["GOTUNE_NUMA_DEBUG"] = "1"
    return subprocess.run(
        ["fake", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
        executable=str(layout["wrap"] / "fake"),
    )


def _calls(layout: dict[str, Path]) -> list[list[str]]:
    if not layout["calls"].exists():
        return []
    tokens = layout["calls"].read_bytes().decode().split("\0")[:-1]
    calls = []
    while tokens:
        n = int(tokens.pop(0))
        calls.append(tokens[:n])
        del tokens[:n]
    return calls


def _path(layout: dict[str, Path], *extra: str) -> str:
    return ":".join([str(layout["wrap"]), *extra, str(layout["real"]), str(layout["basics"])])


@needs_numactl
def test_binding_that_works_runs_the_tool_under_numactl_once(layout: dict[str, Path]) -> None:
    _wrapper(layout, ["--cpunodebind=0", "--preferred=0"], [0])
    numactl_dir = str(Path(NUMACTL or "").parent)
    r = _run(layout, _path(layout, numactl_dir), HOSTILE, stdin="hello\n", exit_code=7)
    assert r.returncode == 7
    assert r.stdout == "hello\n"
    assert "preferred node: 0" in r.stderr
    assert "gotune-numa: fake: numactl --cpunodebind=0 --preferred=0" in r.stderr
    assert _calls(layout) == [HOSTILE]
    assert not Path("/tmp/pwned").exists()


def test_numactl_failing_at_bind_time_still_runs_the_tool_exactly_once(
    layout: dict[str, Path],
) -> None:
    # Stand-in: a numactl that fails every binding, as it does on a node the kernel lacks.
    broken = layout["basics"].parent / "broken"
    broken.mkdir()
    _exe(broken / "numactl", "#!/bin/sh\necho 'set_mempolicy: Invalid argument' >&2\nexit 1\n")
    _wrapper(layout, ["--cpunodebind=0", "--preferred=0"], [0])
    r = _run(layout, _path(layout, str(broken)), HOSTILE, stdin="data\n", exit_code=3)
    assert r.returncode == 3
    assert r.stdout == "data\n"
    assert "fails here; running" in r.stderr
    assert "Invalid argument" not in r.stderr  # the probe's complaint is not the tool's
    assert _calls(layout) == [HOSTILE]


def test_missing_numactl_runs_the_real_tool_unchanged(layout: dict[str, Path]) -> None:
    _wrapper(layout, ["--interleave=0"], [0])
    r = _run(layout, _path(layout), ["x y"], exit_code=0)
    assert r.returncode == 0
    assert "numactl is not installed" in r.stderr
    assert _calls(layout) == [["x y"]]


@needs_numactl
def test_offline_node_runs_the_real_tool_without_trying_to_bind(layout: dict[str, Path]) -> None:
    _wrapper(layout, ["--cpunodebind=0", "--preferred=0"], [0, 63])  # node 63 does not exist here
    r = _run(layout, _path(layout, str(Path(NUMACTL or "").parent)), ["a"], exit_code=5)
    assert r.returncode == 5
    assert "node 63 is offline" in r.stderr
    assert _calls(layout) == [["a"]]


def test_gotune_numa_off_skips_binding(layout: dict[str, Path]) -> None:
    _wrapper(layout, ["--interleave=0"], [0])
    env = {
        "PATH": _path(layout),
        "CALLS": str(layout["calls"]),
        "GOTUNE_NUMA": "off",
        "GOTUNE_NUMA_DEBUG": "1",
    }
    r = subprocess.run(
        [str(layout["wrap"] / "fake")],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=30,
    )
    assert r.returncode == 0 and "GOTUNE_NUMA=off" in r.stderr


def test_wrapper_finds_the_next_tool_on_path_not_itself(
    layout: dict[str, Path], tmp_path: Path
) -> None:
    # A second copy of the wrapper (a symlink to it) earlier on PATH must not be taken for the tool.
    loop = tmp_path / "loop"
    loop.mkdir()
    _wrapper(layout, ["--interleave=0"], [0])
    (loop / "fake").symlink_to(layout["wrap"] / "fake")
    r = _run(layout, ":".join([str(loop), ".", "", _path(layout)]), ["v"], debug=False)
    assert r.returncode == 0
    assert _calls(layout) == [["v"]]


def test_wrapper_uses_the_recorded_path_when_path_has_no_tool(layout: dict[str, Path]) -> None:
    _wrapper(layout, ["--interleave=0"], [0], recorded=str(layout["real"] / "fake"))
    r = _run(layout, f"{layout['wrap']}:{layout['basics']}", ["r"], debug=False)
    assert r.returncode == 0
    assert _calls(layout) == [["r"]]


def test_wrapper_without_any_real_tool_says_so_and_exits_127(layout: dict[str, Path]) -> None:
    _wrapper(layout, ["--interleave=0"], [0], recorded="/nonexistent/fake")
    r = _run(layout, f"{layout['wrap']}:{layout['basics']}", [], debug=False)
    assert r.returncode == 127
    assert "the real fake is not on PATH" in r.stderr
    assert _calls(layout) == []


def test_wrapper_is_plain_posix_sh(layout: dict[str, Path]) -> None:
    path = _wrapper(layout, ["--cpunodebind=1", "--preferred=1"], [1])
    assert path.read_text().startswith("#!/bin/sh\n")
    checker = shutil.which("dash") or shutil.which("sh")
    assert checker
    assert subprocess.run([checker, "-n", str(path)], check=False).returncode == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o755


@pytest.mark.parametrize(
    ("args", "recorded"),
    [
        (["--preferred=1; rm -rf /"], None),
        (["--physcpubind=0"], None),
        ([], None),
        (["--interleave=0,1"], "/opt/go dir/bin/go"),
        (["--interleave=0,1"], "relative/go"),
    ],
)
def test_wrapper_refuses_hostile_policies_and_paths(args: list[str], recorded: str | None) -> None:
    from pyinfra.api import OperationError

    with pytest.raises(OperationError):
        wrapper_script("go", args, [0], "r", recorded)


def test_wrapper_refuses_a_tool_name_that_is_not_one() -> None:
    from pyinfra.api import OperationError

    with pytest.raises(OperationError):
        wrapper_script("../go", ["--interleave=0"], [0], "r")


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("/usr/local/go/bin:/usr/local/lib/gotune/bin:/usr/bin", "B:/usr/local/go/bin:/usr/bin"),
        ("/usr/bin:/bin", "B:/usr/bin:/bin"),
        ("/usr/local/lib/gotune/bin", "B"),
        ("", "B"),
        ("/a:/usr/local/lib/gotune/bin:/b c:/usr/local/lib/gotune/bin", "B:/a:/b c"),
    ],
)
def test_profile_snippet_puts_the_wrapper_dir_first_exactly_once(
    tmp_path: Path, before: str, after: str
) -> None:
    # The toolchain's own snippet prepends /usr/local/go/bin; ours must win wherever it runs.
    snippet = tmp_path / "snippet.sh"
    snippet.write_text(profile_snippet())
    for shell in ("/bin/sh", shutil.which("bash")):
        assert shell
        r = subprocess.run(
            [shell, "-c", f'. {snippet}; printf "%s" "$PATH"; test -z "${{gotune_p+x}}"'],
            env={"PATH": before},
            capture_output=True,
            text=True,
            check=False,
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout == after.replace("B", WRAPPER_DIR, 1)
