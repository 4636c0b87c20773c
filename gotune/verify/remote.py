"""Run the verify runner on a pyinfra host and read its answer.

The runner (``gotune/verify/target.py``, standard library only) is sent as the
stdin of ``python3 - ARGS`` through pyinfra's ``host.run_shell_command``, so it
works the same over SSH and on ``@local`` and needs nothing installed on the
host but python3. Its arguments are one JSON document, shell-quoted.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from gotune.agent.verify.runner import MARKER
from gotune.errors import GotuneError

RUNNER = Path(__file__).resolve().parent.parent / "agent" / "verify" / "runner.py"
# The default set takes about a minute once the verify caches are warm; the first
# run on a host also warms them (a cold cmd/go build per variant), --thorough adds
# cold builds: allow for a slow machine before calling the host stuck.
RUN_TIMEOUT_S = 1800
# The distribution's python3 first (as deploys/agent.py does): root's PATH may
# lead to a pyenv shim or a venv that the developer user cannot run.
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")
RECORD_TIMEOUT_S = 60


def runner_command(args: dict[str, Any]) -> str:
    """The shell command that runs the runner from stdin with ``args``."""
    quoted = shlex.quote(json.dumps(args, sort_keys=True))
    missing = shlex.quote(MARKER + json.dumps({"error": "python3 not found on the host"}))
    tries = " ".join(f"[ -x {p} ] && exec {p} - {quoted};" for p in SYSTEM_PYTHONS)
    return (f"{tries} if command -v python3 >/dev/null 2>&1; then exec python3 - {quoted}; "
            f"else echo {missing}; fi")


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


def run_runner(host: Any, args: dict[str, Any], timeout: float = RUN_TIMEOUT_S) -> dict[str, Any]:
    """Run the runner on ``host`` (a pyinfra Host) and return its JSON."""
    kwargs: dict[str, Any] = {"_stdin": RUNNER.read_text(encoding="utf-8"), "_timeout": timeout}
    if host.data.get("_sudo"):
        kwargs["_sudo"] = True
    try:
        _ok, output = host.run_shell_command(runner_command(args), **kwargs)
    except Exception as exc:  # a connector error (timeout, dropped connection) is per host
        raise GotuneError(f"{host.name}: verify runner: {type(exc).__name__}: {exc}") from exc
    return parse_output(output.stdout, output.stderr)


def record_history(host: Any, path: str, record: dict[str, Any]) -> str | None:
    """Append ``record`` to the host's history file; the error text, or None when kept."""
    try:
        data = run_runner(host, {"mode": "record", "path": path, "record": record},
                          timeout=RECORD_TIMEOUT_S)
    except GotuneError as exc:
        return str(exc)
    return str(data["error"]) if data.get("error") else None
