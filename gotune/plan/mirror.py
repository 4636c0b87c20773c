"""Where the local module mirror keeps its cache, and which NUMA node it runs on.

Pure rules over ``facts.model`` (no I/O), used only when ``gotune_mirror_enabled``:

- ``gotune_mirror_cache_dir`` set: that directory, as written.
- Otherwise the cache goes on the filesystem the plan chose for the first developer's
  GOMODCACHE (persistent, local, the fastest with room: ``caches.py``): the mirror's
  artefacts are the same bytes ``go mod download`` unpacks there, read at the same
  moments. The directory is ``<mount>/gotune/mirror`` (``/var/cache/gotune/mirror``
  on ``/``), root's gotune directory beside the users' caches.
- No GOMODCACHE to follow (no developer user), or it sits somewhere a cache must not
  be moved to (network, RAM, read-only, a path gotune will not write into a unit):
  ``DEFAULT_CACHE_DIR``.

The NUMA node comes from ``gotune.plan.numa.mirror_decision``: the node local to the
NIC it serves. A loopback mirror serves only this host, so it is never bound.
"""

from __future__ import annotations

import ipaddress

from gotune.facts.model import Facts
from gotune.plan.model import Decision
from gotune.plan.numa import mirror_decision
from gotune.plan.storage import SAFE_PATH, place_of, unsuitable
from gotune.settings import Settings

# The unit's, the supervisor's and the settings' default: root's gotune cache area.
DEFAULT_CACHE_DIR = "/var/cache/gotune/mirror"
# The directory's name inside ``<mount>/gotune`` (beside ``<mount>/gotune/<user>``).
MIRROR_DIR = "mirror"
# Used instead when a developer user is called "mirror" (their caches own that name).
MIRROR_DIR_ALT = "gotune-mirror"


def cache_dir_on(mount: str, users: list[str]) -> str:
    """The mirror's directory on the filesystem mounted at ``mount``."""
    if mount.rstrip("/") == "":
        return DEFAULT_CACHE_DIR
    name = MIRROR_DIR_ALT if MIRROR_DIR in users else MIRROR_DIR
    return f"{mount.rstrip('/')}/gotune/{name}"


def plan_mirror_cache(facts: Facts, settings: Settings, gomod: Decision | None) -> Decision:
    """The ``mirror`` decision: the cache directory, its storage class and why.

    + facts: the facts of the first developer user (their mounts and path placements)
    + settings: the host's validated settings
    + gomod: the plan's GOMODCACHE decision for that user (None: no developer user)
    """
    explicit = settings["gotune_mirror_cache_dir"]
    if explicit:
        place = place_of(facts, explicit)
        return Decision(
            "mirror",
            explicit,
            place.class_,
            "gotune_mirror_cache_dir is set",
            [f"gotune_mirror_cache_dir={explicit}"],
            True,
            details={"mount": place.mount},
        )
    if gomod is None or not gomod.value:
        place = place_of(facts, DEFAULT_CACHE_DIR)
        return Decision(
            "mirror",
            DEFAULT_CACHE_DIR,
            place.class_,
            "no developer user's GOMODCACHE to follow: root's gotune cache area",
            ["gotune_users=[]"],
            True,
            details={"mount": place.mount},
        )
    where = place_of(facts, gomod.value, "gomodcache")
    mount = gomod.details.get("mount") if gomod.change else None
    mount = mount or where.mount
    used = [f"plan.GOMODCACHE={gomod.value} ({where.class_} {where.fstype or '?'} at {mount})"]
    problem = unsuitable(where) if not gomod.change else None
    if mount is None:
        problem = problem or f"the filesystem holding {gomod.value} is unknown"
    want = cache_dir_on(mount, settings.users) if mount else DEFAULT_CACHE_DIR
    if problem is None and not SAFE_PATH.match(want):
        problem = f"{want} has characters gotune does not write into a unit file"
    if problem:
        place = place_of(facts, DEFAULT_CACHE_DIR)
        return Decision(
            "mirror",
            DEFAULT_CACHE_DIR,
            place.class_,
            f"not beside GOMODCACHE ({problem}): root's gotune cache area",
            used,
            True,
            details={"mount": place.mount},
        )
    return Decision(
        "mirror",
        want,
        where.class_,
        f"on the storage the plan chose for {gomod.user}'s GOMODCACHE ({where.class_} at "
        f"{mount}): persistent, local, the fastest with room; modules are read from "
        "both at the same moments",
        used,
        True,
        details={"mount": mount},
    )


def mirror_nic(settings: Settings) -> str | None:
    """The NIC the mirror serves: ``lo`` for a loopback address, else None (the fastest up)."""
    addr = ipaddress.ip_address(settings["gotune_mirror_listen"])
    return "lo" if addr.is_loopback else None


def plan_mirror(facts: Facts, settings: Settings, gomod: Decision | None) -> list[Decision]:
    """The mirror's decisions (none when ``gotune_mirror_enabled`` is false).

    + facts: the host's facts as gathered for the first developer user
    + settings: the host's validated settings
    + gomod: the first developer user's GOMODCACHE decision
    """
    if not settings["gotune_mirror_enabled"]:
        return []
    numa = mirror_decision(facts, mirror_nic(settings))
    numa.facts_used.append(f"gotune_mirror_listen={settings['gotune_mirror_listen']}")
    return [plan_mirror_cache(facts, settings, gomod), numa]
