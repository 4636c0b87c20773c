"""Where the local module mirror keeps its cache, which NUMA node it runs on, and GOPROXY.

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
Developers' GOPROXY points at the mirror first and at its upstream on any error
(``developer_goproxy``), so a stopped mirror never stops a build.
"""

from __future__ import annotations

import ipaddress

from gotune.agent.paths import MIRROR_CACHE_DIR
from gotune.facts.model import Facts
from gotune.plan.model import Decision, MirrorCache, MirrorPlan, MovedCache
from gotune.plan.numa import mirror_decision
from gotune.plan.storage import SAFE_PATH, place_of, unsuitable
from gotune.settings import Settings

# The unit's, the supervisor's and the settings' default: root's gotune cache area.
DEFAULT_CACHE_DIR = MIRROR_CACHE_DIR
# The directory's name inside ``<mount>/gotune`` (beside ``<mount>/gotune/<user>``).
MIRROR_DIR = "mirror"
# ("gotune-mirror" instead when a developer user is called "mirror": their caches own it.)


def cache_dir_on(mount: str, users: tuple[str, ...], name: str = MIRROR_DIR,
                 root_default: str = DEFAULT_CACHE_DIR) -> str:
    """A service's directory ``<mount>/gotune/<name>`` on the filesystem mounted at ``mount``.

    + name: the service's directory name (``gotune-<name>`` when a developer user has it)
    + root_default: the directory on ``/``
    """
    if mount.rstrip("/") == "":
        return root_default
    dir_name = f"gotune-{name}" if name in users else name
    return f"{mount.rstrip('/')}/gotune/{dir_name}"


def developer_goproxy(settings: Settings) -> str:
    """GOPROXY for developers on the host: the mirror first, upstream on any error."""
    listen = ipaddress.ip_address(settings.mirror_listen)
    local = "127.0.0.1" if listen.is_unspecified or listen.is_loopback else str(listen)
    if listen.version == 6 and not listen.is_unspecified and not listen.is_loopback:
        local = f"[{listen}]"
    upstream = settings.mirror_upstream
    tail = "" if upstream.endswith((",direct", "|direct", ",off", "|off")) else ",direct"
    return f"http://{local}:{settings.mirror_port}|{upstream}{tail}"


def service_cache_dir(
    facts: Facts, users: tuple[str, ...], gomod: Decision | None, explicit: tuple[str, str | None],
    name: str, root_default: str,
) -> tuple[str, str, list[str], str | None]:
    """(directory, why, facts used, its mount) for a service's cache (the mirror's, the
    build cache's): the setting when given, else beside the first user's GOMODCACHE.

    + users: the developer users (their names are taken in ``<mount>/gotune``)
    + gomod: the first developer user's GOMODCACHE decision
    + explicit: (the setting's name, its value or None)
    + name: the directory's name in ``<mount>/gotune``
    + root_default: the directory on ``/``, and when no other place suits
    """
    key, value = explicit
    if value:
        return value, f"{key} is set", [f"{key}={value}"], place_of(facts, value).mount
    if gomod is None or not gomod.value:
        return (root_default, "no developer user's GOMODCACHE to follow: root's gotune "
                "cache area", ["gotune_users=[]"], place_of(facts, root_default).mount)
    first = facts.users.get(gomod.user or "")
    where = place_of(facts, gomod.value, first.paths.get("gomodcache") if first else None)
    mount = gomod.mount if isinstance(gomod, MovedCache) else None
    mount = mount or where.mount
    used = [f"plan.GOMODCACHE={gomod.value} ({where.class_} {where.fstype or '?'} at {mount})"]
    problem = unsuitable(where) if not isinstance(gomod, MovedCache) else None
    if mount is None:
        problem = problem or f"the filesystem holding {gomod.value} is unknown"
    want = cache_dir_on(mount, users, name, root_default) if mount else root_default
    if problem is None and not SAFE_PATH.match(want):
        problem = f"{want} has characters gotune does not write into a unit file"
    if problem:
        return (root_default, f"not beside GOMODCACHE ({problem}): root's gotune cache area",
                used, place_of(facts, root_default).mount)  # fmt: skip
    return want, (
        f"on the storage the plan chose for {gomod.user}'s GOMODCACHE ({where.class_} at "
        f"{mount}): persistent, local, the fastest with room"
    ), used, mount


def mirror_nic(settings: Settings) -> str | None:
    """The NIC the mirror serves: ``lo`` for a loopback address, else None (the fastest up)."""
    addr = ipaddress.ip_address(settings.mirror_listen)
    return "lo" if addr.is_loopback else None


def plan_mirror(facts: Facts, settings: Settings, gomod: Decision | None) -> MirrorPlan | None:
    """The mirror's decisions (None when ``gotune_mirror_enabled`` is false).

    + facts: the host's facts (mounts, the installed mirror in ``facts.gotune``)
    + settings: the host's validated settings
    + gomod: the first developer user's GOMODCACHE decision
    """
    if not settings.mirror_enabled:
        return None
    cache_dir, why, used, mount = service_cache_dir(
        facts, settings.users, gomod, ("gotune_mirror_cache_dir", settings.mirror_cache_dir),
        MIRROR_DIR, DEFAULT_CACHE_DIR,
    )
    if why.startswith("on the storage"):
        why += "; modules are read from both at the same moments"
    installed = facts.gotune.mirror.cache_dir if facts.gotune.mirror else None
    cache = MirrorCache(
        key="mirror", value=cache_dir, medium=place_of(facts, cache_dir).class_, reason=why,
        facts_used=used, change=installed != cache_dir, current=installed, mount=mount,
        goproxy=developer_goproxy(settings),
    )  # fmt: skip
    binding = mirror_decision(facts, mirror_nic(settings))
    binding.facts_used.append(f"gotune_mirror_listen={settings.mirror_listen}")
    return MirrorPlan(cache, binding)
