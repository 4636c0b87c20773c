"""Run the verify runner on a pyinfra host, through the agent zipapp, and read its answer.

The runner is the agent's ``verify-runner`` command (``gotune.agent.verify``):
``python3 AGENT verify-runner REQUEST_JSON``. When the host's installed agent
(``/opt/gotune/gotune.pyz``) is this very build (same sha256), that one runs, in
one round trip. Otherwise (apply never ran there, or an older gotune installed
it) this build's zipapp is uploaded into a private temporary directory, run from
there and removed when the verify of that host ends. Either way the host needs
nothing but python3, and it works the same over SSH and on ``@local``.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
from collections.abc import Iterator
from typing import Any

from gotune.agent.launch import agent_sh, exec_agent_sh, find_python3_sh
from gotune.agent.paths import AGENT_PATH
from gotune.agent.verify.runner import MARKER
from gotune.errors import GotuneError
from gotune.zipapp import agent_bytes, agent_sha256

# The default set takes about a minute once the verify caches are warm; the first
# run on a host also warms them (a cold cmd/go build per variant), --thorough adds
# cold builds: allow for a slow machine before calling the host stuck.
RUN_TIMEOUT_S = 1800
RECORD_TIMEOUT_S = 60
# Making, filling and removing the temporary directory are quick shell commands.
SETUP_TIMEOUT_S = 60
# What the first command prints when the host needs our zipapp: the directory for it.
UPLOAD_MARKER = "GOTUNE-AGENT-UPLOAD "
UPLOAD_NAME = "gotune.pyz"
# mktemp's template: private (0700 until filled, then 0755 so the developer user,
# whom the root runner becomes, can read the archive), random name.
TEMP_TEMPLATE = "/tmp/gotune-agent.XXXXXXXXXX"
TEMP_PARENT = TEMP_TEMPLATE.rsplit("/", 1)[0] + "/"


def _request(args: dict[str, Any]) -> list[str]:
    return ["verify-runner", json.dumps(args, sort_keys=True)]


def runner_command(args: dict[str, Any], agent: str = AGENT_PATH) -> str:
    """The shell command that runs ``agent``'s verify runner with ``args``."""
    return agent_sh(_request(args), agent)


def installed_or_upload_command(args: dict[str, Any], sha256: str,
                                installed: str = AGENT_PATH) -> str:
    """Run the installed agent when it hashes to ``sha256``; else make a directory for ours.

    Prints the runner's answer, or ``UPLOAD_MARKER DIR``, or a runner-style error
    line when the host has no python3.
    """
    q = shlex.quote
    missing = q(MARKER + json.dumps({"error": "python3 not found on the host"}))
    return (
        f'{find_python3_sh()}; if [ -z "$py" ]; then echo {missing}; exit 0; fi; '
        f'if [ "$(sha256sum {q(installed)} 2>/dev/null | cut -c1-64)" = {q(sha256)} ]; then '
        f"{exec_agent_sh(_request(args), installed)}; fi; "
        f"d=$(mktemp -d {q(TEMP_TEMPLATE)}) && echo {q(UPLOAD_MARKER)}\"$d\""
    )


def parse_output(stdout: str, stderr: str = "") -> dict[str, Any]:
    """The runner's JSON line; an error document when there is none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            try:
                data = json.loads(line[len(MARKER):])
            except ValueError:
                break
            if isinstance(data, dict):
                return data
            break
    tail = (stderr.strip().splitlines() or stdout.strip().splitlines() or ["no output"])[-1]
    return {"error": f"the verify runner failed: {tail[:300]}"}


def _upload_dir(stdout: str) -> str | None:
    for line in stdout.splitlines():
        directory = line.removeprefix(UPLOAD_MARKER).strip()
        if line.startswith(UPLOAD_MARKER) and directory.startswith(TEMP_PARENT):
            return directory
    return None


class HostAgent:
    """The agent on one host for one verify: the installed one when it is this build,
    else a private uploaded copy that ``close`` removes."""

    def __init__(self, host: Any, installed: str = AGENT_PATH) -> None:
        self.host = host
        self.installed = installed
        self.kwargs: dict[str, Any] = {"_sudo": True} if host.data.get("_sudo") else {}
        self.temp_dir: str | None = None

    def _shell(self, command: str, timeout: float) -> Any:
        try:
            _ok, output = self.host.run_shell_command(command, _timeout=timeout, **self.kwargs)
        except Exception as exc:  # a connector error (timeout, dropped connection) is per host
            raise GotuneError(
                f"{self.host.name}: verify runner: {type(exc).__name__}: {exc}") from exc
        return output

    def run(self, args: dict[str, Any], timeout: float = RUN_TIMEOUT_S) -> dict[str, Any]:
        """The runner's answer to ``args`` on this host."""
        if self.temp_dir is None:
            command = installed_or_upload_command(args, agent_sha256(), self.installed)
            output = self._shell(command, timeout)
            upload = _upload_dir(output.stdout)
            if upload is None:
                return parse_output(output.stdout, output.stderr)
            self.temp_dir = upload
            self._upload(upload)
        agent = f"{self.temp_dir}/{UPLOAD_NAME}"
        output = self._shell(runner_command(args, agent), timeout)
        return parse_output(output.stdout, output.stderr)

    def _upload(self, directory: str) -> None:
        """This build's zipapp into ``directory``, readable by the developer users."""
        dest = f"{directory}/{UPLOAD_NAME}"
        try:
            ok = self.host.put_file(io.BytesIO(agent_bytes()), dest, **self.kwargs)
        except Exception as exc:  # the connector's own errors, as for commands
            raise GotuneError(f"{self.host.name}: cannot upload the gotune agent: {exc}") from exc
        if not ok:
            raise GotuneError(f"{self.host.name}: cannot upload the gotune agent to {dest}")
        q = shlex.quote
        self._shell(f"chmod 755 {q(directory)} && chmod 644 {q(dest)}", SETUP_TIMEOUT_S)

    def close(self) -> None:
        """Remove the uploaded copy, if there is one."""
        if self.temp_dir is not None:
            directory, self.temp_dir = self.temp_dir, None
            self._shell(f"rm -rf {shlex.quote(directory)}", SETUP_TIMEOUT_S)


@contextlib.contextmanager
def host_agent(host: Any) -> Iterator[HostAgent]:
    """The agent on ``host`` (a pyinfra Host) for the length of the ``with`` block."""
    agent = HostAgent(host)
    try:
        yield agent
    finally:
        # A host that dropped its connection keeps the directory in /tmp.
        with contextlib.suppress(GotuneError):
            agent.close()


def record_history(agent: HostAgent, path: str, record: dict[str, Any]) -> str | None:
    """Append ``record`` to the host's history file; the error text, or None when kept."""
    try:
        data = agent.run({"mode": "record", "path": path, "record": record},
                         timeout=RECORD_TIMEOUT_S)
    except GotuneError as exc:
        return str(exc)
    return str(data["error"]) if data.get("error") else None
