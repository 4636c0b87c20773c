"""The current host's settings, facts and plan, for deploys run by plain pyinfra.

``gotune apply`` gathers every host's facts and makes the plans itself, then
hands each deploy its ``HostPlan``; ``pyinfra INVENTORY deploys/laptop.py`` (or
``deploys/mirror.py`` ...) has no such caller, so the deploy file asks here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pyinfra import host

from gotune.facts.gather import gather
from gotune.plan import make_plan
from gotune.plan.model import HostPlan
from gotune.settings import validate_host_data


def current_host_plan(**wanted: Any) -> HostPlan:
    """Validate, gather and plan for the host pyinfra is working on.

    + wanted: settings the deploy file itself implies (running ``deploys/wear.py`` means
      the wear check is wanted), over the host's data
    """
    settings = dataclasses.replace(validate_host_data(host.data.dict(), host.name), **wanted)
    facts = gather(settings)
    return HostPlan(settings, facts, make_plan(facts, settings))
