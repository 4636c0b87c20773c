"""The toolchain component's facts: which go a developer runs, and what ``go env`` says.

The collector runs ``go env -json`` as each developer user through a login shell
(``facts/caches.py`` splits the rest of that output): go looked up on the login
PATH and in /usr/local/go/bin, with GOTOOLCHAIN=local so nothing is downloaded.
``GOVERSION`` and ``GOROOT`` there are what the toolchain plan compares with
``gotune_go_version``; the variables printed after it are what Go's defaults
follow when no go could run.
"""

from __future__ import annotations

import json

from gotune.facts.sysfs import key_values

VARS_MARKER = "\n@@vars\n"
GOENV_FILE_MARKER = "\n@@goenvfile "


def parse_goenv(output: str | None) -> tuple[dict[str, str] | None, dict[str, str]]:
    """(``go env -json`` or None, the login environment variables the collector printed)."""
    if output is None:
        return None, {}
    head, found, tail = output.partition(VARS_MARKER)
    if not found:
        head, tail = "", output.partition("@@vars\n")[2]
    tail = tail.partition(GOENV_FILE_MARKER)[0]  # the GOENV file follows: facts/caches.py
    env = key_values(tail)
    go: dict[str, str] | None = None
    if head.strip():
        try:
            data = json.loads(head)
        except ValueError:
            data = None
        if isinstance(data, dict):
            go = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    return go, env
