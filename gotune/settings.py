"""Every ``gotune_*`` setting, declared once: the typed, frozen ``Settings`` object.

Settings are pyinfra host and group data (``inventories/group_data/*.py`` or the
per-host dicts in an inventory file). Each field of ``Settings`` IS the registry
entry: its name (``gotune_`` + field name), its type (the annotation, checked at
run time), its default, its doc and its validator (``setting(...)``). Code reads
``settings.tmpfs_max_gib``, never a string key, so a typo is a mypy error.

``validate_host_data`` checks one host's data against it; the CLI and the
deploys call it for *every* host before any host is touched, so a typo on one
host changes nothing anywhere.

To add a setting, add one field in the section for your subject. A validator
returns ``None`` when the value is fine, or a short phrase saying what is wrong
("must be a sha256: 64 hex digits"); the error names the key and the host.

Conventions chosen here:
- Go versions are written without the ``go`` prefix: ``1.22.3`` (``go1.22.3`` is refused).
- Sizes are GiB as a non-negative int or float.
- User names follow the portable POSIX rule used by useradd: ``[a-z_][a-z0-9_-]*``,
  at most 32 characters (an optional trailing ``$`` is refused: no machine accounts).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import ipaddress
import json
import math
import os
import pwd
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gotune.agent.paths import WEAR_TEXTFILE_DIR
from gotune.agent.stats import MAX_RUNS
from gotune.agent.verify.workload import MAX_WORKLOAD_PACKAGES
from gotune.agent.wear.status import Thresholds
from gotune.errors import GotuneError

PREFIX = "gotune_"
GIB = 1024**3

Validator = Callable[[Any], "str | None"]


def setting(
    default: Any,
    doc: str,
    validate: Validator | None = None,
    host_default: Callable[[str], Any] | None = None,
) -> Any:
    """A ``Settings`` field: its default, one line of doc, and its validator.

    + default: the value when the key is absent
    + doc: one line for people: what it does and its unit
    + validate: returns None when fine, or what is wrong
    + host_default: computes the default from the host name instead (``gotune_users``)
    """
    meta = {"doc": doc, "validate": validate, "host_default": host_default}
    return field(default=default, metadata=meta)


# --- validators -------------------------------------------------------------------------------

_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_VERSION_RE = re.compile(r"^1\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*)|(rc|beta)[1-9][0-9]*)?$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Characters an https URL for a tarball needs; anything else (quotes, spaces, $, `) is refused.
_URL_RE = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~%/+-]*)?$")
# A path that goes into a systemd unit and a crontab line: absolute, and no
# characters those formats or a shell treat specially (cron turns % into newlines).
_PLAIN_PATH_RE = re.compile(r"^/[A-Za-z0-9._/+-]*$")
# Top-level trees a service's directory (chowned to its system user) is never in.
SYSTEM_TREES = ("proc", "sys", "dev", "run", "boot", "etc", "bin", "sbin", "lib", "lib64")
# Larger numbers are typos (or YAML's 1e999): no size, count or port gotune reads comes near.
MAX_NUMBER = 1e9
# The build cache's URL goes into GOENV (a GOCACHEPROG argument, split on spaces) and
# the helper speaks plain HTTP on the LAN: http://, a host, a port, an optional path.
_HTTP_URL_RE = re.compile(r"^http://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/+-]*)?$"
                          r"|^http://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?(/[A-Za-z0-9._~%/+-]*)?$")
# Upstream URLs go into a unit file and a shell script: plain URL characters only.
_GOPROXY_RE = re.compile(r"^[A-Za-z0-9.:/_~%+-]+([,|][A-Za-z0-9.:/_~%+-]+)*$")


def valid_user_name(name: object) -> bool:
    return isinstance(name, str) and bool(_USER_RE.fullmatch(name))


def _users(value: Any) -> str | None:
    if not all(isinstance(u, str) for u in value):
        return "must be a list of user names"
    for u in value:
        if not valid_user_name(u):
            return f"{u!r} is not a valid user name ([a-z_][a-z0-9_-]*, at most 32 characters)"
    if len(set(value)) != len(value):
        return "lists a user twice"
    return None


def _go_version(value: str) -> str | None:
    if value.startswith("go") and _VERSION_RE.fullmatch(value[2:]):
        return f"write the version without the 'go' prefix: {value[2:]!r}"
    if not _VERSION_RE.fullmatch(value):
        return f"{value!r} is not a Go version like 1.22.3"
    return None


def _sha256(value: str) -> str | None:
    if not _SHA256_RE.fullmatch(value):
        return "must be a SHA-256 checksum: 64 lowercase hex digits"
    return None


def _tarball(value: str) -> str | None:
    if value.startswith("https://"):
        return None if _URL_RE.fullmatch(value) else f"{value!r} is not a plain https URL"
    if "://" in value:
        return "must be an https URL or a path on the control machine"
    if not Path(value).is_file():
        return f"{value}: no such file on the control machine"
    return None


def _non_negative(value: float) -> str | None:
    return f"must not be negative (got {value})" if value < 0 else None


def _positive(value: float) -> str | None:
    return f"must be positive (got {value})" if value <= 0 else None


def _at_most(limit: int, low: int = 0) -> Callable[[int], str | None]:
    """A count from ``low`` to ``limit``."""
    def check(value: int) -> str | None:
        return None if low <= value <= limit else f"must be from {low} to {limit} (got {value})"

    return check


def _percent(value: int) -> str | None:
    return None if 1 <= value <= 100 else f"must be a percentage from 1 to 100 (got {value})"


def _plain_abs_path(value: str) -> str | None:
    if value == "":
        return None
    if not _PLAIN_PATH_RE.fullmatch(value) or "/../" in value + "/":
        return f"{value!r} must be an absolute path of letters, digits and ._/+-"
    # A service's own directory (chowned to its system user): never / or a system tree.
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if len(parts) < 2 or parts[0] in SYSTEM_TREES:
        return f"{value!r} is a system directory; name a directory of its own (/srv/gotune/x)"
    return None


def _linux_path(value: str) -> str | None:
    if not value.startswith("/") or any(ord(c) < 32 for c in value) or "/../" in value + "/":
        return f"{value!r} must be an absolute Linux path"
    return None


def _linux_paths(value: Any) -> str | None:
    if not all(isinstance(p, str) for p in value):
        return "must be a list of paths"
    return next((problem for p in value if (problem := _linux_path(p))), None)


def _ip_address(value: str) -> str | None:
    # Python accepts any text after an IPv6 zone's '%' ("fe80::1%a b"); it would reach the
    # service's unit file, where '%' starts a systemd specifier.
    if "%" in value:
        return f"{value!r}: an address with a zone (%) is not supported; use a global address"
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"{value!r} is not an IP address"
    return None


def _port(value: int) -> str | None:
    return None if 1 <= value <= 65535 else f"must be a TCP port 1-65535 (got {value})"


def _cidrs(value: Any) -> str | None:
    for item in value:
        if not isinstance(item, str):  # ip_network takes 1 as 0.0.0.1/32
            return f"{item!r} is not a network like 192.168.1.0/24 (a string)"
        if "%" in item:
            return f"{item!r}: a network with a zone (%) is not supported"
        try:
            ipaddress.ip_network(item, strict=False)
        except (TypeError, ValueError):
            return f"{item!r} is not a network like 192.168.1.0/24"
    return None


def _goproxy_list(value: str) -> str | None:
    from gotune.agent.mirror.upstream import parse_url_list

    if not _GOPROXY_RE.fullmatch(value):
        return f"{value!r} is not a GOPROXY list of plain URLs"
    try:
        entries = parse_url_list(value)
    except ValueError as exc:
        return str(exc)
    return None if entries else "names no proxy URL (the mirror cannot fetch 'direct')"


def _http_url(value: str) -> str | None:
    m = _HTTP_URL_RE.fullmatch(value)
    port = (m.group(1) or m.group(3) or ":80")[1:] if m else ""
    if not m or not 1 <= int(port) <= 65535:
        return f"{value!r} is not a plain http://HOST:PORT URL (port 1-65535)"
    return None


def _control_file(value: str) -> str | None:
    if any(ord(c) < 32 for c in value) or not value.strip() or value.endswith("/"):
        return "must be a file name on the control machine"
    return None


def _size(value: str) -> str | None:
    from gotune.agent.units import parse_size

    try:
        parse_size(value)
    except ValueError as exc:
        return str(exc)
    return None


def _one_of(*choices: str) -> Validator:
    def check(value: Any) -> str | None:
        if value not in choices:
            return f"must be one of {', '.join(choices)} (got {value!r})"
        return None

    return check


def default_users(host_name: str) -> tuple[str, ...]:
    """``@local``: the user who ran gotune (``SUDO_USER`` under sudo); elsewhere nobody.

    Without sudo it is the effective uid's account, never ``$USER``: plain ``su``
    leaves a stale ``USER=alice`` in root's environment, and a minimal system may
    not set it at all. Over SSH gotune cannot guess who develops on a machine, so a
    fleet lists its ``gotune_users``; with none, only host-wide changes are made.
    """
    if host_name != "@local":
        return ()
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user and valid_user_name(sudo_user):
        return (sudo_user,)
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without an account (a container's arbitrary uid)
        return ()
    return (user,) if valid_user_name(user) else ()


# --- the registry -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Settings:
    """One host's validated settings; each field is the setting ``gotune_<field>``."""

    host_name: str = field(default="@local", metadata={"internal": True})

    # Who the machine is tuned for.
    users: tuple[str, ...] = setting(
        (),
        "developer users whose Go caches and GOENV gotune manages "
        "(default: @local's invoking user, SUDO_USER under sudo; none over SSH)",
        _users,
        host_default=default_users,
    )

    # The Go toolchain.
    go_version: str | None = setting(
        None, "Go version to install, like 1.22.3 (default: leave the toolchain alone)",
        _go_version,
    )
    go_source: str = setting(
        "tarball",
        "where Go comes from: 'tarball' (gotune_go_tarball) or 'distro' (the distro's package)",
        _one_of("tarball", "distro"),
    )
    go_tarball: str | None = setting(
        None,
        "the go<version>.linux-<arch>.tar.gz: an https URL (downloaded on the control machine "
        "once, checked, uploaded to each host) or a path on the control machine",
        _tarball,
    )
    go_sha256: str | None = setting(
        None, "SHA-256 of gotune_go_tarball, checked before unpacking (required with a tarball)",
        _sha256,
    )

    # Cache placement.
    gocache_tmpfs: str = setting(
        "auto", "GOCACHE on a RAM-backed tmpfs: 'auto' (when RAM allows), 'always' or 'never'",
        _one_of("auto", "always", "never"),
    )
    tmpfs_min_ram_gib: float = setting(
        16, "auto: RAM (GiB) a machine needs before GOCACHE goes to tmpfs", _non_negative
    )
    tmpfs_max_gib: float = setting(
        8, "largest GOCACHE tmpfs (GiB); it is also at most a quarter of RAM", _positive
    )
    min_free_gib: float = setting(
        10, "free space (GiB) a filesystem needs to be chosen for a cache", _non_negative
    )
    snapshot_minutes: int = setting(
        30, "how often a tmpfs GOCACHE is saved to disk (minutes), besides at shutdown",
        _positive,
    )

    # Verify: the user's own workloads.
    projects: tuple[str, ...] = setting(
        (),
        "Go project directories gotune verify builds as the first developer user, as they "
        "would (go build ./..., go test -run XXX ./...), in its own caches",
        _linux_paths,
    )

    # SSD wear: thresholds of the periodic check, the mirror's budget at "warn".
    wear_warn_percent: int = setting(
        80, "wear status 'warn' from this share of rated endurance used (percent)", _percent
    )
    wear_critical_percent: int = setting(
        90, "wear status 'critical' (the mirror stops caching) from this share used (percent)",
        _percent,
    )
    wear_media_errors_critical: int = setting(
        1, "wear status 'critical' from this many unrecovered media errors (0: never)",
        _non_negative,
    )
    mirror_write_budget_gib: float = setting(
        1, "GiB per day the mirror may add to its cache while wear status is 'warn'",
        _non_negative,
    )
    wear_textfile_dir: str = setting(
        WEAR_TEXTFILE_DIR,
        "node_exporter textfile collector directory for gotune_wear.prom ('': no metrics)",
        _plain_abs_path,
    )
    wear_install_smartmontools: bool = setting(
        True,
        "install smartmontools when smartctl is absent, with the distribution's own tool "
        "(apt-get, dnf or yum, zypper, pacman, apk; chosen by os-release ID and ID_LIKE)",
    )
    wear_enabled: bool | None = setting(
        None,
        "the laptop deploy installs the hourly SSD wear check "
        "(default: when gotune_mirror_enabled, whose cache writes it guards)",
    )

    # The module mirror.
    mirror_enabled: bool = setting(
        False, "run the local Go module mirror and point the developers' GOPROXY at it"
    )
    mirror_listen: str = setting(
        "127.0.0.1",
        "address the mirror listens on (loopback; a LAN address needs gotune_mirror_allow)",
        _ip_address,
    )
    mirror_port: int = setting(3000, "the mirror's TCP port", _port)
    mirror_allow: tuple[str, ...] = setting(
        (), "client networks (CIDR) allowed when the mirror listens on a non-loopback address",
        _cidrs,
    )
    mirror_upstream: str = setting(
        "https://proxy.golang.org",
        "upstream proxies, Go's GOPROXY syntax (',' falls back on 404, '|' on any error)",
        _goproxy_list,
    )
    mirror_cache_dir: str | None = setting(
        None,
        "the mirror's cache (a GOPROXY tree); default: <mount>/gotune/mirror on the "
        "filesystem the plan chose for GOMODCACHE (/var/cache/gotune/mirror on /)",
        _plain_abs_path,
    )
    mirror_max_cache_gib: float = setting(
        20, "evict least recently used modules above this size (GiB)", _positive
    )
    mirror_limit_rate: str | None = setting(
        None, "upstream bytes per second, curl-style (512K, 8M); default unlimited", _size
    )
    mirror_limit_requests: float | None = setting(
        None, "upstream requests per second; default unlimited", _positive
    )

    # The team build cache (GOCACHEPROG): a site tier, developers' helpers, builders' writes.
    buildcache_server: bool | None = setting(
        None,
        "serve the team build cache on this host (default: when its mirror serves a LAN, "
        "i.e. gotune_mirror_enabled with a non-loopback gotune_mirror_listen)",
    )
    buildcache_listen: str | None = setting(
        None,
        "address the build cache listens on (default: gotune_mirror_listen; a LAN address "
        "needs client networks)",
        _ip_address,
    )
    buildcache_port: int = setting(3001, "the build cache's TCP port", _port)
    buildcache_allow: tuple[str, ...] = setting(
        (), "client networks (CIDR) allowed when the build cache listens on a LAN address "
        "(default: gotune_mirror_allow)",
        _cidrs,
    )
    buildcache_cache_dir: str | None = setting(
        None,
        "the site's build cache; default: <mount>/gotune/buildcache on the filesystem the "
        "plan chose for GOMODCACHE (/var/cache/gotune/buildcache on /)",
        _plain_abs_path,
    )
    buildcache_max_gib: float = setting(
        20, "the site evicts least recently used build outputs above this size (GiB)", _positive
    )
    buildcache_url: str | None = setting(
        None,
        "the team build cache this host's developers' go asks on a local miss "
        "(http://HOST:PORT); default: this host's own when it serves one",
        _http_url,
    )
    buildcache_builder: bool = setting(
        False, "this host writes its new build outputs to the team build cache (CI, a build "
        "server): it gets the write token; other hosts only read",
    )
    buildcache_measure_runs: int = setting(
        3, "cold builds per arm when apply measures the helper, with the site and without "
        "(0: keep the helper without measuring it; a builder warms the site instead)",
        _at_most(MAX_RUNS),
    )
    buildcache_measure_packages: int = setting(
        200, "packages of the generated workload the helper is measured on (verify's "
        "service; fewer for a quick apply)", _at_most(MAX_WORKLOAD_PACKAGES, low=1),
    )
    buildcache_measure_cmd_go: bool = setting(
        True, "the helper's measurement (and a builder's warm-up) also builds cmd/go",
    )
    buildcache_token_file: str | None = setting(
        None,
        "the builders' write token, a file on the control machine (default: "
        "~/.config/gotune/buildcache.token, made on first use); never stored in the plan",
        _control_file,
    )

    # WSL2 (a WSL2 distro only; elsewhere these are not read).
    wsl_enabled: bool = setting(
        True, "on WSL2, tune /etc/wsl.conf, %USERPROFILE%\\.wslconfig and inotify's limit"
    )
    wsl_wslconfig: bool = setting(
        True, "on WSL2, size the Windows user's .wslconfig for Go builds (false: leave it alone)"
    )
    wsl_windows_profile: str | None = setting(
        None,
        "the Windows user's profile as a Linux path, e.g. /mnt/c/Users/alice (default: asked "
        "through interop: cmd.exe /c echo %USERPROFILE%, wslpath -u)",
        _linux_path,
    )
    wsl_project_dirs: tuple[str, ...] = setting(
        (), "project directories to check: one on a Windows drive (/mnt/X) gets a warning "
        "with the measured cost of a file lookup there", _linux_paths,
    )

    # --- derived views -----------------------------------------------------------------------

    @property
    def wear_check(self) -> bool:
        """``gotune_wear_enabled``, or when unset, whether the mirror runs (it writes to flash)."""
        return self.mirror_enabled if self.wear_enabled is None else self.wear_enabled

    @property
    def buildcache_address(self) -> str:
        """The address the build cache listens on: its own setting, else the mirror's."""
        return self.buildcache_listen or self.mirror_listen

    @property
    def buildcache_clients(self) -> tuple[str, ...]:
        """The networks the build cache admits: its own setting, else the mirror's."""
        return self.buildcache_allow or self.mirror_allow

    @property
    def buildcache_serves(self) -> bool:
        """``gotune_buildcache_server``, or when unset, whether the mirror serves a LAN."""
        if self.buildcache_server is not None:
            return self.buildcache_server
        return self.mirror_enabled and not ipaddress.ip_address(self.mirror_listen).is_loopback

    @staticmethod
    def gib(value: float) -> int:
        """A GiB setting as bytes."""
        return int(float(value) * GIB)

    def to_dict(self) -> dict[str, Any]:
        """``{"gotune_<name>": value}`` for every setting (lists as JSON lists)."""
        return {
            PREFIX + f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in declared()
        }

    def digest(self) -> str:
        """SHA-256 of the settings' canonical JSON: two hosts (or two runs) with the same
        digest were given the same settings."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def declared() -> list[dataclasses.Field[Any]]:
    """The setting fields of ``Settings`` in declaration order."""
    return [f for f in dataclasses.fields(Settings) if not f.metadata.get("internal")]


_HINTS = typing.get_type_hints(Settings)


def _accepted(hint: Any) -> tuple[tuple[type, ...], bool]:
    """(accepted runtime types, None allowed) for a field annotation."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = next(a for a in args if a is not type(None))
        return _accepted(inner)[0], True
    if typing.get_origin(hint) is tuple:
        return (list, tuple), False
    if hint is float:
        return (int, float), False
    return (hint,), False


def _type_name(accepted: tuple[type, ...]) -> str:
    names = {list: "list", tuple: "list", str: "string", int: "number", float: "number",
             bool: "true/false"}  # fmt: skip
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in accepted))


def _problem(f: dataclasses.Field[Any], value: Any) -> str | None:
    accepted, optional = _accepted(_HINTS[f.name])
    if value is None and optional:
        return None
    # bool is an int subclass in Python: True is not a size.
    if isinstance(value, bool) and bool not in accepted:
        return f"must be a {_type_name(accepted)}, not true/false"
    if not isinstance(value, accepted):
        return f"must be a {_type_name(accepted)}, not {type(value).__name__}"
    # NaN passes every comparison's check, and YAML's .inf is a float too.
    if isinstance(value, int | float) and not (math.isfinite(value) and abs(value) <= MAX_NUMBER):
        return f"must be a finite number up to {MAX_NUMBER:g} (got {value!r})"
    validate: Validator | None = f.metadata.get("validate")
    return validate(value) if validate else None


def validate_host_data(data: Mapping[str, Any], host_name: str = "@local") -> Settings:
    """Check one host's data; return its Settings or raise GotuneError naming key and host.

    + data: the host's data (pyinfra ``host.data.dict()`` or any mapping); keys
      without the ``gotune_`` prefix are pyinfra's own and ignored, unless one is a
      setting's name without its prefix (``tmpfs_max_gib``): that is a typo, refused
    + host_name: the inventory name, for the message and for defaults
    """
    fields = {PREFIX + f.name: f for f in declared()}
    for key in sorted(k for k in data if isinstance(k, str)):
        # GOTUNE_TMPFS_MAX_GIB and gotune-mirror-enabled are typos too, never pyinfra's.
        if key.lower().replace("-", "_").startswith(PREFIX) and key not in fields:
            near = key.lower().replace("-", "_")
            hint = difflib.get_close_matches(near, list(fields), n=1, cutoff=0.75)
            raise GotuneError(
                f"host {host_name}: unknown setting {key}"
                + (f" (did you mean {hint[0]}?)" if hint else "")
            )
        if PREFIX + key in fields:
            raise GotuneError(
                f"host {host_name}: {key} is not read: gotune's settings start with "
                f"'{PREFIX}' (did you mean {PREFIX + key}?)"
            )
    # pyinfra's own (an Ansible inventory's ansible_port becomes it), but gotune connects
    # with it: paramiko takes 107758 as port 42222.
    port = data.get("ssh_port")
    if port is not None and (type(port) is not int or not 1 <= port <= 65535):
        raise GotuneError(f"host {host_name}: ssh_port must be a TCP port 1-65535 (got {port!r})")
    values: dict[str, Any] = {}
    for key, f in fields.items():
        if key in data:
            problem = _problem(f, data[key])
            if problem:
                raise GotuneError(f"host {host_name}: setting {key} {problem}")
            value = data[key]
            values[f.name] = tuple(value) if isinstance(value, list | tuple) else value
        elif f.metadata.get("host_default"):
            values[f.name] = f.metadata["host_default"](host_name)
    settings = Settings(host_name=host_name, **values)
    _check_combinations(settings)
    return settings


def _check_combinations(s: Settings) -> None:
    if s.go_version is not None and s.go_source == "tarball":
        for key, value in (("gotune_go_tarball", s.go_tarball), ("gotune_go_sha256", s.go_sha256)):
            if value is None:
                raise GotuneError(
                    f"host {s.host_name}: setting {key} is required when gotune_go_version is "
                    "set (or set gotune_go_source = 'distro')"
                )
    try:  # the wear check's own rule, here so no host is touched before it says no
        Thresholds(warn_percent=s.wear_warn_percent, critical_percent=s.wear_critical_percent,
                   media_errors_critical=s.wear_media_errors_critical).check()
    except ValueError as exc:
        raise GotuneError(f"host {s.host_name}: wear settings: {exc}") from None
    exposed = s.mirror_enabled and not ipaddress.ip_address(s.mirror_listen).is_loopback
    if exposed and not s.mirror_allow:
        raise GotuneError(
            f"host {s.host_name}: gotune_mirror_listen {s.mirror_listen} is not loopback; "
            "set gotune_mirror_allow to the client networks (CIDR) that may use it"
        )
    address = s.buildcache_address
    exposed = s.buildcache_serves and not ipaddress.ip_address(address).is_loopback
    if exposed and not s.buildcache_clients:
        raise GotuneError(
            f"host {s.host_name}: the build cache listens on {address}, not loopback; "
            "set gotune_buildcache_allow to the client networks (CIDR) that may use it"
        )


def validate_inventory(inventory: Any, user: str | None = None) -> dict[str, Settings]:
    """Validate every host of a pyinfra Inventory; the first problem raises.

    + user: the developer user for hosts whose data sets no ``gotune_users``
      (``--user`` on the command line)

    Nothing is connected or changed: this reads inventory data only.
    """
    for host in inventory:
        _check_address(host.name, host.data.dict())
    return {
        host.name: validate_host_data(with_user(host.data.dict(), user), host.name)
        for host in inventory
    }


def _check_address(name: str, data: Mapping[str, Any]) -> None:
    """Refuse an address no resolver takes (a 300-character label, undecodable bytes read
    from an inventory file): the SSH connector would fail on it with a traceback."""
    target = data.get("ssh_hostname") or name
    if not isinstance(target, str) or target.startswith("@"):
        return
    try:
        ipaddress.ip_address(target.strip("[]"))
        return
    except ValueError:
        pass
    try:
        target.encode("idna")
    except UnicodeError:
        raise GotuneError(f"host {name[:80]!r}: {target[:80]!r} is not a host name or "
                          "address") from None


def with_user(data: Mapping[str, Any], user: str | None) -> Mapping[str, Any]:
    """Host data with ``gotune_users = [user]`` unless it names its own developers."""
    if user is None or PREFIX + "users" in data:
        return data
    return {**data, PREFIX + "users": [user]}


def describe() -> list[dict[str, Any]]:
    """The registry as data (for docs and ``--help`` style listings)."""
    return [
        {"name": PREFIX + f.name, "default": f.default, "doc": f.metadata["doc"]}
        for f in declared()
    ]
