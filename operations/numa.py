"""NUMA wrappers: write them, measure them against the plain tool, keep the ones that help.

The plan (``gotune/plan/numa.py``) names a numactl policy per tool. Here:

- ``wrapper`` writes ``/usr/local/lib/gotune/bin/<tool>`` (root, 0755) from
  ``templates/numa-wrapper.sh.j2``, then runs the agent's ``numa-measure`` on the
  host (``python3 /opt/gotune/gotune.pyz numa-measure ...``; the deploy installs the
  agent first, see ``wrappers_wanted``): interleaved wrapped/plain runs as the
  developer user, medians, and the keep rule.
  A wrapper that does not beat the noise is deleted by that same command, and the
  figures go to ``/var/lib/gotune/numa.json``. A later apply finds the figures for
  the same wrapper content and changes nothing: a kept wrapper stays, a removed one
  stays removed. A new policy (other nodes, a new template) is measured afresh.
- ``absent`` removes a wrapper the plan no longer wants.
- ``search_path`` puts the wrapper directory first on PATH: ``/etc/profile.d`` for
  login shells, ``/etc/environment.d`` for the systemd user session (IDEs started
  from a desktop). gopls is found on PATH by vim-go, eglot, lsp-mode, Helix and Zed;
  VS Code's Go extension searches GOBIN and GOPATH/bin first (the plan says so and
  names ``go.alternateTools``). gopls itself runs ``go`` from its PATH.

Every file is written through ``operations.state`` so ``gotune undo`` removes it.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Generator, Sequence
from typing import Any

from pyinfra import host
from pyinfra.api import OperationError, StringCommand, operation
from pyinfra.facts.files import Directory, File
from pyinfra.facts.server import Which

from gotune.agent.launch import agent_sh
from gotune.agent.paths import AGENT_PATH, NUMA_ENVIRONMENT_D, NUMA_PROFILE_SNIPPET
from gotune.facts.numa import NumaMeasured
from gotune.operations.render import render
from gotune.operations.state import file as state_file
from gotune.operations.state import hexname, record_cmd, record_path_cmd
from gotune.plan.numa import MEASURED_PATH, WRAPPER_DIR

q = shlex.quote

TEMPLATE = "numa-wrapper.sh.j2"
# Sourced after the toolchain's gotune.sh (which prepends the Go bin dir) in any collation.
PROFILE_SNIPPET = NUMA_PROFILE_SNIPPET
# systemd's user manager reads it for every service of the session, desktop apps included.
ENVIRONMENT_D = NUMA_ENVIRONMENT_D
# What each tool runs while it is measured. `go build std` is a real build of ~300
# packages that is a cache lookup after the warm-up pair (0.4 s on 2 cores); gopls
# `check` loads and type-checks a package from the standard library.
DEFAULT_WORKLOADS: dict[str, list[str]] = {
    "go": ["build", "std"],
    "gopls": ["check", "{goroot}/src/fmt/print.go"],
}

_TOOL_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# numactl options gotune writes: long options with node lists, nothing a shell would read.
_ARG_RE = re.compile(r"^--(cpunodebind|preferred|interleave|membind)=[0-9]+(,[0-9]+)*$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._+/-]*$")


def wrapper_script(
    tool: str,
    numactl_args: Sequence[str],
    nodes: Sequence[int],
    reason: str,
    recorded: str | None = None,
    bin_dir: str = WRAPPER_DIR,
) -> str:
    """The wrapper's text; refuses anything that is not a plain tool name, policy or path.

    + tool: the command it stands in for (``go``, ``gopls``)
    + numactl_args: the policy, e.g. ``["--cpunodebind=1", "--preferred=1"]``
    + nodes: the nodes that must be online for the policy to apply
    + reason: the plan's one-line reason, kept as a comment
    + recorded: the real binary's absolute path, used when PATH has none
    + bin_dir: the directory the wrapper lives in (skipped when searching PATH)
    """
    if not _TOOL_RE.match(tool):
        raise OperationError(f"numa wrapper: {tool!r} is not a tool name")
    bad = [a for a in numactl_args if not _ARG_RE.match(a)]
    if bad or not numactl_args:
        raise OperationError(
            f"numa wrapper for {tool}: refusing numactl arguments {list(numactl_args)!r}"
        )
    for path in (recorded, bin_dir):
        if path is not None and not _SAFE_PATH.match(path):
            raise OperationError(f"numa wrapper for {tool}: refusing path {path!r}")
    text = " ".join(numactl_args)
    return render(
        TEMPLATE,
        tool=tool,
        tool_q=q(tool),
        bin_dir_q=q(bin_dir.rstrip("/") or "/"),
        recorded_q=q(recorded or ""),
        numactl_args_q=" ".join(q(a) for a in numactl_args),
        numactl_args_text=text,
        nodes_text=" ".join(str(int(n)) for n in nodes),
        reason_comment=" ".join(reason.split()),
    )


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


HEADER = "# gotune: NUMA wrappers for the Go tools come first on PATH (`gotune undo` removes it).\n"


def profile_snippet(bin_dir: str = WRAPPER_DIR) -> str:
    """Moves ``bin_dir`` to the front of PATH, wherever it was (other snippets prepend too)."""
    return (
        f"{HEADER}"
        'gotune_p=":$PATH:"\n'
        "while :; do\n"
        f'    case $gotune_p in *":{bin_dir}:"*) '
        f'gotune_p="${{gotune_p%%:{bin_dir}:*}}:${{gotune_p#*:{bin_dir}:}}" ;; *) break ;; esac\n'
        "done\n"
        'gotune_p="${gotune_p#:}"\n'
        'gotune_p="${gotune_p%:}"\n'
        f'PATH="{bin_dir}${{gotune_p:+:$gotune_p}}"\n'
        "export PATH\n"
        "unset gotune_p\n"
    )


def environment_d(bin_dir: str = WRAPPER_DIR) -> str:
    return f"{HEADER}PATH={bin_dir}${{PATH:+:$PATH}}\n"


def _ensure_dir(path: str) -> Generator[Any, None, None]:
    """Create a root-owned 0755 directory once, recorded so undo removes it."""
    if host.get_fact(Directory, path=path):
        return
    top = path  # the highest directory that is missing: undo removes it and all below
    while top.count("/") > 1 and not host.get_fact(Directory, path=top.rsplit("/", 1)[0]):
        top = top.rsplit("/", 1)[0]
    yield record_cmd("created", hexname(top), top)
    yield StringCommand(
        f"mkdir -p -m 0755 {q(path)} && chown root:root {q(path)} && chmod 0755 {q(path)}"
    )


def _real_binary(tool: str, real: str | None) -> str | None:
    if real and _SAFE_PATH.match(real) and host.get_fact(File, path=real):
        return real
    found = host.get_fact(Which, command=tool)
    if found and _SAFE_PATH.match(found) and not found.startswith(WRAPPER_DIR + "/"):
        return str(found)
    return None


@operation()
def wrapper(
    tool: str,
    numactl_args: list[str],
    nodes: list[int],
    reason: str,
    user: str,
    real: str | None = None,
    workload: list[str] | None = None,
    pairs: int = 7,
    goroot: str | None = None,
    bin_dir: str = WRAPPER_DIR,
    record: str = MEASURED_PATH,
) -> Generator[Any, None, None]:
    """
    Write a numactl wrapper for ``tool``, measure it against the plain tool, keep it if it helps.

    + tool: ``go`` or ``gopls`` (any tool with a workload)
    + numactl_args: the policy from the plan, e.g. ``["--cpunodebind=1", "--preferred=1"]``
    + nodes: the nodes the policy names (the wrapper checks they are online)
    + reason: the plan's reason, written into the wrapper as a comment
    + user: the developer user the measurement runs as (their GOCACHE, their GOENV)
    + real: the real binary's recorded path (else ``which`` on the host)
    + workload: the tool's arguments while measured (default: ``DEFAULT_WORKLOADS``)
    + pairs: counted wrapped/plain pairs
    + goroot: the Go root the workloads read (``{goroot}`` in a workload argument)
    + bin_dir: the wrapper directory
    + record: the JSON file the figures go to

    **Example:**

    .. code:: python

        numa.wrapper(tool="gopls", numactl_args=["--cpunodebind=1", "--preferred=1"], nodes=[1],
                     reason="...", user="alice", real="/home/alice/go/bin/gopls")
    """
    path = f"{bin_dir}/{tool}"
    real_path = _real_binary(tool, real)
    missing = None
    if real_path is None:
        missing = tool
    elif not host.get_fact(Which, command="numactl"):
        missing = "numactl"  # without it a wrapper cannot help
    if real_path is None or missing:
        host.noop(f"{missing} is not installed: no {tool} wrapper")
        yield from _remove(path)
        return
    content = wrapper_script(tool, numactl_args, nodes, reason, real_path, bin_dir)
    sha = sha256_text(content)
    entry = host.get_fact(NumaMeasured, path=record).get(tool)
    if entry and entry.get("wrapper_sha256") == sha:
        if entry.get("keep"):
            yield from state_file._inner(path=path, content=content, mode=0o755)
        elif host.get_fact(File, path=path):
            yield from _remove(path)
        else:
            host.noop(f"{path} was measured and not kept (gain {entry.get('gain')})")
        return
    args = list(workload or DEFAULT_WORKLOADS.get(tool, []))
    if not args:
        raise OperationError(f"numa wrapper for {tool}: no workload to measure it with")
    if any("{goroot}" in a for a in args):
        if not goroot or not _SAFE_PATH.match(goroot):
            host.noop(f"{tool}: GOROOT is unknown, nothing to measure it with: no wrapper")
            yield from _remove(path)
            return
        args = [a.replace("{goroot}", goroot) for a in args]
    if not host.get_fact(File, path=AGENT_PATH):  # it measures; the deploy installs it first
        host.noop(f"the gotune agent ({AGENT_PATH}) is not installed: {tool} wrapper not measured")
        yield from _remove(path)
        return
    yield from _ensure_dir(bin_dir)
    yield from state_file._inner(path=path, content=content, mode=0o755)
    yield record_path_cmd(record)
    yield StringCommand(
        agent_sh(
            [
                "numa-measure",
                "--tool", tool,
                "--wrapper", path,
                "--real", real_path,
                "--user", user,
                f"--numactl-args={' '.join(numactl_args)}",
                "--record", record,
                "--pairs", str(int(pairs)),
                "--remove-unhelpful",
                "--",
                *args,
            ]
        )
    )  # fmt: skip


def _remove(path: str) -> Generator[Any, None, None]:
    if host.get_fact(File, path=path):
        yield record_path_cmd(path)
        yield StringCommand(f"rm -f {q(path)}")


@operation()
def absent(tool: str, bin_dir: str = WRAPPER_DIR) -> Generator[Any, None, None]:
    """
    Remove the wrapper for ``tool`` (the plan wants none), recording it for undo.

    + tool: the wrapped command
    + bin_dir: the wrapper directory

    **Example:**

    .. code:: python

        numa.absent(tool="dlv")
    """
    path = f"{bin_dir}/{tool}"
    if not host.get_fact(File, path=path):
        host.noop(f"no {tool} wrapper")
        return
    yield from _remove(path)


@operation()
def search_path(bin_dir: str = WRAPPER_DIR, systemd: bool = True) -> Generator[Any, None, None]:
    """
    Put the wrapper directory first on PATH for login shells and the desktop session.

    + bin_dir: the wrapper directory
    + systemd: also write ``/etc/environment.d`` (read by the systemd user manager)

    **Example:**

    .. code:: python

        numa.search_path()
    """
    if not _SAFE_PATH.match(bin_dir):
        raise OperationError(f"numa: refusing wrapper directory {bin_dir!r}")
    yield from _ensure_dir(bin_dir)
    yield from state_file._inner(path=PROFILE_SNIPPET, content=profile_snippet(bin_dir), mode=0o644)
    if systemd:
        yield from state_file._inner(path=ENVIRONMENT_D, content=environment_d(bin_dir), mode=0o644)
