"""The plan each host should match now, made the way apply makes it.

``gotune verify`` compares ``go env`` with the plan. apply keeps no copy of its
plan on the host, so verify plans again from fresh facts (one ``Machine`` fact
round trip per developer user), exactly as ``deploys/tune.plan_current_host``
does under apply. After an apply the plan is stable: the same values, with
nothing left to change. A host whose plan cannot be made is compared with its
GOENV file instead, and the reason is reported.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable
from typing import Any


def current_plans(hosts: Iterable[Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(host name -> Plan, host name -> why no plan) for connected pyinfra hosts."""
    from pyinfra.context import ctx_host

    from gotune.deploys.tune import plan_current_host

    plans: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for host in hosts:
        try:
            with ctx_host.use(host), contextlib.redirect_stdout(io.StringIO()):
                plans[host.name] = plan_current_host().plan
        except Exception as exc:  # facts or plan failing on one host must not stop verify
            inner = getattr(exc, "exception", None) or exc
            problems[host.name] = f"{type(inner).__name__}: {inner}"
    return plans, problems
