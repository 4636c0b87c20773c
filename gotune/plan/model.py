"""What the planner returns: typed decisions with their reasons, grouped per component.

Each decision kind is a frozen dataclass with keyword-only, typed fields: a tmpfs
GOCACHE has its mountpoint, size and snapshot, a kept cache has none, so reading
a field a decision lacks is a mypy error, not a KeyError on someone's laptop.

``Plan.to_dict`` is the JSON ``gotune plan --json`` prints for one host and what
apply stores on the host (``/var/lib/gotune/plan.json``)::

    {"decisions": [{"key", "value", "medium", "reason", "facts_used", "change",
                    "user", "current", "details": {...}, "kind"}], "warnings": [...]}

``details`` holds the fields a kind adds to the common ones; ``kind`` names the
class, so ``Plan.from_dict`` reads a stored plan back into the same types.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from gotune.facts.model import Facts
from gotune.settings import Settings

# Keys of the per-user cache decisions, in the order the plan lists them.
CACHE_KEYS = ("GOMODCACHE", "GOCACHE", "GOTMPDIR")
# Keys of the wsl component's host-wide decisions besides its two files.
INOTIFY_KEY = "fs.inotify.max_user_watches"
DEFENDER_KEY = "defender"


@dataclass(frozen=True, kw_only=True)
class Decision:
    """One thing gotune decides for a host or one of its users.

    + key: what is decided: ``GOCACHE``, ``GOMODCACHE``, ``GOTMPDIR``, ``go`` (the toolchain),
      ``numa``, ``numa.<tool>``, ``mirror``, ``numa.mirror``, ``buildcache.site``,
      ``buildcache.helper``, ``wear``, ``GOENV``, and on WSL2 ``wsl.conf``, ``.wslconfig``,
      ``fs.inotify.max_user_watches``, ``GOPATH``, ``defender``
    + value: the path, version or policy wanted; None leaves Go's default (unset)
    + medium: where it lives: a storage class (nvme, ssd, hdd ...), ``tmpfs``, or for ``go``
      ``tarball``/``distro``/``unchanged``
    + reason: one line a user understands
    + facts_used: the facts the decision rests on, as ``name=value``
    + change: whether the host must change to match (False: already as wanted)
    + user: the developer user it is for (None: the whole host)
    + current: what is there today (path or version), when known
    """

    kind: ClassVar[str] = "keep"

    key: str
    value: str | None
    medium: str
    reason: str
    facts_used: list[str] = field(default_factory=list)
    change: bool = False
    user: str | None = None
    current: str | None = None

    def details(self) -> dict[str, Any]:
        """The fields this kind adds to the common ones."""
        common = {f.name for f in dataclasses.fields(Decision)}
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in common
        }

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(Decision)}
        out["facts_used"] = list(self.facts_used)
        out["details"] = self.details()
        out["kind"] = self.kind
        return out


# --- caches ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MovedCache(Decision):
    """A persistent cache moved (files and all) to gotune's directory on a faster local
    filesystem, or back to Go's default in home; ``mount`` is the filesystem's mount point."""

    kind: ClassVar[str] = "moved"
    mount: str | None


@dataclass(frozen=True, kw_only=True)
class TmpfsCache(Decision):
    """GOCACHE on a size-capped tmpfs gotune mounts, saved to ``snapshot`` on disk."""

    kind: ClassVar[str] = "tmpfs"
    mountpoint: str
    size_bytes: int
    snapshot: str


@dataclass(frozen=True, kw_only=True)
class TmpfsTmpdir(Decision):
    """GOTMPDIR on the GOCACHE tmpfs."""

    kind: ClassVar[str] = "tmpfs-dir"
    mountpoint: str


@dataclass(frozen=True)
class UserCaches:
    """The caches component's decisions for one developer user."""

    gomodcache: Decision
    gocache: Decision
    gotmpdir: Decision

    def decisions(self) -> list[Decision]:
        return [self.gomodcache, self.gocache, self.gotmpdir]


# --- toolchain -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TarballToolchain(Decision):
    """Go from a checked tarball into ``goroot``, switched in by the ``link`` symlink."""

    kind: ClassVar[str] = "tarball"
    version: str
    tarball: str
    sha256: str
    goroot: str
    link: str


@dataclass(frozen=True, kw_only=True)
class DistroToolchain(Decision):
    """Go from the distribution's package."""

    kind: ClassVar[str] = "distro"


# --- numa ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NumaNode(Decision):
    """The node the long-lived Go tools run on (None: one node, nothing to bind)."""

    kind: ClassVar[str] = "numa-node"
    node: int | None = None
    dram_nodes: list[int] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class NumaWrapper(Decision):
    """A numactl wrapper for one tool (``value`` None: no wrapper)."""

    kind: ClassVar[str] = "numa-wrapper"
    tool: str
    wrapper: str
    numactl_args: list[str] = field(default_factory=list)
    nodes: list[int] = field(default_factory=list)
    real: str | None = None
    goroot: str | None = None
    why: str = ""  # the reason without figures: what the wrapper's comment says
    measured: dict[str, Any] | None = None


@dataclass(frozen=True)
class NumaPlan:
    node: NumaNode
    tools: list[NumaWrapper] = field(default_factory=list)

    def decisions(self) -> list[Decision]:
        return [self.node, *self.tools]


# --- mirror ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MirrorCache(Decision):
    """The module mirror's cache directory (``value``) and the GOPROXY developers get."""

    kind: ClassVar[str] = "mirror"
    mount: str | None
    goproxy: str


@dataclass(frozen=True, kw_only=True)
class MirrorBinding(Decision):
    """The numactl prefix of the mirror's service (empty: unbound)."""

    kind: ClassVar[str] = "mirror-binding"
    numactl_args: list[str] = field(default_factory=list)
    nodes: list[int] = field(default_factory=list)
    nic: str | None = None


@dataclass(frozen=True)
class MirrorPlan:
    cache: MirrorCache
    binding: MirrorBinding

    def decisions(self) -> list[Decision]:
        return [self.cache, self.binding]


# --- buildcache -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BuildcacheSite(Decision):
    """The team build cache this host serves (``value``: its directory)."""

    kind: ClassVar[str] = "buildcache-site"
    mount: str | None
    listen: str
    port: int
    max_bytes: int
    allow: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class BuildcacheHelper(Decision):
    """The GOCACHEPROG helper of this host's developers (``value``: GOCACHEPROG without a
    builder's token file; None: no helper) and the site it asks."""

    kind: ClassVar[str] = "buildcache-helper"
    site: str
    helper: str
    builder: bool = False
    go: str | None = None  # the go that builds the helper on the host
    go_version: str | None = None
    token_dir: str | None = None  # builders: <token_dir>/<user> holds each user's token
    measured: dict[str, Any] | None = None

    def command_for(self, user: str) -> str | None:
        """GOCACHEPROG for ``user``: with their token file on a builder."""
        if self.value is None:
            return None
        if self.builder and self.token_dir:
            return f"{self.value} -token-file {self.token_dir}/{user}"
        return self.value


@dataclass(frozen=True)
class BuildcachePlan:
    site: BuildcacheSite | None = None
    helper: BuildcacheHelper | None = None

    def decisions(self) -> list[Decision]:
        return [d for d in (self.site, self.helper) if d is not None]


# --- wear and GOENV --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class WearCheck(Decision):
    """The periodic SSD wear check (``value`` None: not installed)."""

    kind: ClassVar[str] = "wear"
    runner: str  # "systemd" (a timer) or "cron"


@dataclass(frozen=True, kw_only=True)
class GoenvDecision(Decision):
    """A user's GOENV file (``value`` its path) and the keys gotune sets in it."""

    kind: ClassVar[str] = "goenv"
    values: dict[str, str | None] = field(default_factory=dict)


# --- wsl -------------------------------------------------------------------------------------

# What makes WSL read wsl.conf and .wslconfig again: it stops every distro and the VM,
# so gotune never runs it; windows/gotune-wsl.ps1 offers it.
WSL_RESTART = "wsl --shutdown"


@dataclass(frozen=True, kw_only=True)
class WslConfig(Decision):
    """One of WSL's configuration files (``value`` its path) and the keys gotune sets in it.

    ``keys``: ``section.key`` -> the value wanted; ``was``: what each reads today (None:
    unset). ``refused`` says why gotune leaves the file alone (a line WSL cannot read, an
    owner other than root, no Windows profile). The file is written with ``newline``
    line ends (None: its own) and its byte order mark only when ``keep_bom``.
    """

    kind: ClassVar[str] = "wsl-config"
    keys: dict[str, str] = field(default_factory=dict)
    was: dict[str, str | None] = field(default_factory=dict)
    quoted: list[str] = field(default_factory=list)
    newline: str | None = None
    default_newline: str = "\n"  # a new file's line ends
    keep_bom: bool = True
    owner_uid: int | None = None  # the owner a file must have to be written (None: any)
    restart: str | None = None  # after what the change takes effect
    refused: str | None = None
    measured: dict[str, Any] | None = None  # appendWindowsPath: the lookups' figures


@dataclass(frozen=True, kw_only=True)
class WslSysctl(Decision):
    """A kernel setting raised for good (``path``, a sysctl.d file) and at once."""

    kind: ClassVar[str] = "wsl-sysctl"
    path: str


@dataclass(frozen=True, kw_only=True)
class WslGopath(Decision):
    """A developer's GOPATH moved off Windows' drives (``value`` goes into GOENV)."""

    kind: ClassVar[str] = "wsl-gopath"


@dataclass(frozen=True)
class WslPlan:
    """The wsl component's decisions: wsl.conf, .wslconfig, inotify, GOPATHs, Defender advice."""

    conf: WslConfig
    wslconfig: WslConfig | None
    inotify: WslSysctl
    defender: Decision
    gopath: dict[str, WslGopath] = field(default_factory=dict)

    def decisions(self) -> list[Decision]:
        files = [self.conf] + ([self.wslconfig] if self.wslconfig else [])
        return [*files, self.inotify, *self.gopath.values(), self.defender]

    @property
    def restart_needed(self) -> list[WslConfig]:
        """The files whose change waits for ``wsl --shutdown``."""
        return [d for d in (self.conf, self.wslconfig) if d is not None and d.change]


# --- the plan --------------------------------------------------------------------------------


@dataclass
class Plan:
    """Every component's decisions for one host, and the warnings."""

    toolchain: Decision
    caches: dict[str, UserCaches] = field(default_factory=dict)
    numa: NumaPlan | None = None
    mirror: MirrorPlan | None = None
    buildcache: BuildcachePlan | None = None
    wear: WearCheck | None = None
    wsl: WslPlan | None = None
    goenv: dict[str, GoenvDecision] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def decisions(self) -> list[Decision]:
        """Every decision in the order the plan prints them."""
        out: list[Decision] = [self.toolchain]
        for caches in self.caches.values():
            out += caches.decisions()
        for part in (self.numa, self.mirror, self.buildcache):
            if part is not None:
                out += part.decisions()
        if self.wear is not None:
            out.append(self.wear)
        if self.wsl is not None:
            out += self.wsl.decisions()
        out += self.goenv.values()
        return out

    @property
    def users(self) -> list[str]:
        return list(self.caches)

    @property
    def changes(self) -> list[Decision]:
        return [d for d in self.decisions if d.change]

    def to_dict(self) -> dict[str, Any]:
        return {
            "decisions": [d.to_dict() for d in self.decisions],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """A plan read back from its JSON (``/var/lib/gotune/plan.json``); ValueError if garbled."""
        try:
            decisions = [_decision(d) for d in data["decisions"]]
            warnings = [str(w) for w in data.get("warnings", [])]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a gotune plan: {exc}") from None
        return _assemble(decisions, warnings)


_KINDS: dict[str, type[Decision]] = {
    c.kind: c
    for c in (Decision, MovedCache, TmpfsCache, TmpfsTmpdir, TarballToolchain, DistroToolchain,
              NumaNode, NumaWrapper, MirrorCache, MirrorBinding, BuildcacheSite,
              BuildcacheHelper, WearCheck, GoenvDecision, WslConfig, WslSysctl, WslGopath)
}  # fmt: skip


def _decision(data: dict[str, Any]) -> Decision:
    kind = _KINDS.get(str(data.get("kind", "keep")))
    if kind is None:
        raise ValueError(f"unknown decision kind {data.get('kind')!r}")
    common = {f.name: data[f.name] for f in dataclasses.fields(Decision) if f.name in data}
    try:
        return kind(**common, **dict(data.get("details") or {}))
    except TypeError as exc:
        raise ValueError(f"decision {data.get('key')!r}: {exc}") from None


D = TypeVar("D", bound=Decision)


def _only(decisions: list[Decision], key: str, kind: type[D]) -> D | None:
    found = [d for d in decisions if d.key == key and isinstance(d, kind)]
    return found[0] if found else None


def _assemble(decisions: list[Decision], warnings: list[str]) -> Plan:
    toolchain = _only(decisions, "go", Decision)
    if toolchain is None:
        raise ValueError("not a gotune plan: no toolchain decision")
    plan = Plan(toolchain=toolchain, warnings=warnings)
    users = list(dict.fromkeys(d.user for d in decisions if d.key in CACHE_KEYS and d.user))
    for user in users:
        mine = {d.key: d for d in decisions if d.user == user and d.key in CACHE_KEYS}
        if set(mine) == set(CACHE_KEYS):
            plan.caches[user] = UserCaches(*(mine[k] for k in CACHE_KEYS))
    node = _only(decisions, "numa", NumaNode)
    if node is not None:
        tools = [d for d in decisions if isinstance(d, NumaWrapper)]
        plan.numa = NumaPlan(node, tools)
    cache = _only(decisions, "mirror", MirrorCache)
    binding = _only(decisions, "numa.mirror", MirrorBinding)
    if cache is not None and binding is not None:
        plan.mirror = MirrorPlan(cache, binding)
    site = _only(decisions, "buildcache.site", BuildcacheSite)
    helper = _only(decisions, "buildcache.helper", BuildcacheHelper)
    if site is not None or helper is not None:
        plan.buildcache = BuildcachePlan(site, helper)
    plan.wear = _only(decisions, "wear", WearCheck)
    conf = _only(decisions, "wsl.conf", WslConfig)
    inotify = _only(decisions, INOTIFY_KEY, WslSysctl)
    defender = _only(decisions, DEFENDER_KEY, Decision)
    if conf is not None and inotify is not None and defender is not None:
        plan.wsl = WslPlan(
            conf, _only(decisions, ".wslconfig", WslConfig), inotify, defender,
            {d.user: d for d in decisions if isinstance(d, WslGopath) and d.user},
        )  # fmt: skip
    plan.goenv = {d.user: d for d in decisions if isinstance(d, GoenvDecision) and d.user}
    return plan


@dataclass(frozen=True)
class HostPlan:
    """Everything a deploy needs for one host: its settings, its facts and its plan."""

    settings: Settings
    facts: Facts
    plan: Plan
