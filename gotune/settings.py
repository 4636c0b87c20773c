"""Every ``gotune_*`` setting, declared once: name, type, default, doc, validator.

Settings are pyinfra host and group data (``inventories/group_data/*.py`` or the
per-host dicts in an inventory file). ``validate_host_data`` checks one host's
data against this registry; the CLI and the deploys call it for *every* host
before any host is touched, so a typo on one host changes nothing anywhere.

To add a setting, append one ``Setting`` to ``SETTINGS`` in the section for your
subject. A validator returns ``None`` when the value is fine, or a short phrase
saying what is wrong ("must be a sha256: 64 hex digits"); the error names the key
and the host around it.

Conventions chosen here:
- Go versions are written without the ``go`` prefix: ``1.22.3`` (``go1.22.3`` is refused).
- Sizes are GiB as a non-negative int or float.
- User names follow the portable POSIX rule used by useradd: ``[a-z_][a-z0-9_-]*``,
  at most 32 characters (an optional trailing ``$`` is refused: no machine accounts).
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gotune.errors import GotuneError

PREFIX = "gotune_"

Validator = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Setting:
    """One ``gotune_*`` setting.

    + name: the data key, with the ``gotune_`` prefix
    + types: accepted Python types of the value (``None`` is accepted when the default is None)
    + default: the value when the key is absent (a callable is called with the host name)
    + doc: one line for people: what it does and its unit
    + validate: returns None when fine, or what is wrong
    """

    name: str
    types: tuple[type, ...]
    default: Any
    doc: str
    validate: Validator | None = None

    def default_for(self, host_name: str) -> Any:
        return self.default(host_name) if callable(self.default) else self.default


# --- validators -------------------------------------------------------------------------------

_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_VERSION_RE = re.compile(r"^1\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*)|(rc|beta)[1-9][0-9]*)?$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Characters an https URL for a tarball needs; anything else (quotes, spaces, $, `) is refused.
_URL_RE = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~%/+-]*)?$")


def _valid_user_name(name: object) -> bool:
    return isinstance(name, str) and bool(_USER_RE.match(name))


def _users(value: Any) -> str | None:
    if not all(isinstance(u, str) for u in value):
        return "must be a list of user names"
    for u in value:
        if not _valid_user_name(u):
            return f"{u!r} is not a valid user name ([a-z_][a-z0-9_-]*, at most 32 characters)"
    if len(set(value)) != len(value):
        return "lists a user twice"
    return None


def _go_version(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.startswith("go") and _VERSION_RE.match(value[2:]):
        return f"write the version without the 'go' prefix: {value[2:]!r}"
    if not _VERSION_RE.match(value):
        return f"{value!r} is not a Go version like 1.22.3"
    return None


def _sha256(value: Any) -> str | None:
    if value is None:
        return None
    if not _SHA256_RE.match(value):
        return "must be a SHA-256 checksum: 64 lowercase hex digits"
    return None


def _tarball(value: Any) -> str | None:
    if value is None:
        return None
    if value.startswith("https://"):
        return None if _URL_RE.match(value) else f"{value!r} is not a plain https URL"
    if "://" in value:
        return "must be an https URL or a path on the control machine"
    if not Path(value).is_file():
        return f"{value}: no such file on the control machine"
    return None


def _non_negative(value: Any) -> str | None:
    if value < 0:
        return f"must not be negative (got {value})"
    return None


def _positive(value: Any) -> str | None:
    if value <= 0:
        return f"must be positive (got {value})"
    return None


def _wear_percent(value: Any) -> str | None:
    if not 1 <= value <= 100:
        return f"must be a percentage from 1 to 100 (got {value})"
    return None


# A path that goes into a systemd unit and a crontab line: absolute, and no
# characters those formats or a shell treat specially (cron turns % into newlines).
_PLAIN_PATH_RE = re.compile(r"^/[A-Za-z0-9._/+-]*$")


def _plain_abs_path(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not _PLAIN_PATH_RE.match(value) or "/../" in value + "/":
        return f"{value!r} must be an absolute path of letters, digits and ._/+-"
    return None


def _mirror_listen(value: Any) -> str | None:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"{value!r} is not an IP address"
    return None


def _port(value: Any) -> str | None:
    return None if 1 <= value <= 65535 else f"must be a TCP port 1-65535 (got {value})"


def _cidrs(value: Any) -> str | None:
    import ipaddress

    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except (TypeError, ValueError):
            return f"{item!r} is not a network like 192.168.1.0/24"
    return None


# Upstream URLs go into a unit file and a shell script: plain URL characters only.
_GOPROXY_RE = re.compile(r"^[A-Za-z0-9.:/_~%+-]+([,|][A-Za-z0-9.:/_~%+-]+)*$")


def _goproxy_list(value: Any) -> str | None:
    from gotune.agent.mirror.upstream import parse_url_list

    if not _GOPROXY_RE.match(value):
        return f"{value!r} is not a GOPROXY list of plain URLs"
    try:
        entries = parse_url_list(value)
    except ValueError as exc:
        return str(exc)
    return None if entries else "names no proxy URL (the mirror cannot fetch 'direct')"


def _mirror_size(value: Any) -> str | None:
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


def default_users(host_name: str) -> list[str]:
    """``@local``: the user who ran gotune (``SUDO_USER`` under sudo); elsewhere nobody.

    Over SSH gotune cannot guess who develops on a machine, so a fleet lists its
    ``gotune_users``; with none, only host-wide changes (the toolchain) are made.
    """
    if host_name != "@local":
        return []
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user and _valid_user_name(sudo_user):
        return [sudo_user]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        return []
    return [user] if _valid_user_name(user) else []


_NUM = (int, float)

# --- the registry -----------------------------------------------------------------------------

SETTINGS: list[Setting] = [
    # Who the machine is tuned for.
    Setting(
        "gotune_users",
        (list, tuple),
        default_users,
        "developer users whose Go caches and GOENV gotune manages "
        "(default: @local's invoking user, SUDO_USER under sudo; none over SSH)",
        _users,
    ),
    # The Go toolchain.
    Setting(
        "gotune_go_version",
        (str,),
        None,
        "Go version to install, like 1.22.3 (default: leave the toolchain alone)",
        _go_version,
    ),
    Setting(
        "gotune_go_source",
        (str,),
        "tarball",
        "where Go comes from: 'tarball' (gotune_go_tarball) or 'distro' (the distro's package)",
        _one_of("tarball", "distro"),
    ),
    Setting(
        "gotune_go_tarball",
        (str,),
        None,
        "the go<version>.linux-<arch>.tar.gz: an https URL (downloaded on the host) "
        "or a path on the control machine (uploaded)",
        _tarball,
    ),
    Setting(
        "gotune_go_sha256",
        (str,),
        None,
        "SHA-256 of gotune_go_tarball, checked before unpacking (required with a tarball)",
        _sha256,
    ),
    # Cache placement.
    Setting(
        "gotune_gocache_tmpfs",
        (str,),
        "auto",
        "GOCACHE on a RAM-backed tmpfs: 'auto' (when RAM allows), 'always' or 'never'",
        _one_of("auto", "always", "never"),
    ),
    Setting(
        "gotune_tmpfs_min_ram_gib",
        _NUM,
        16,
        "auto: RAM (GiB) a machine needs before GOCACHE goes to tmpfs",
        _non_negative,
    ),
    Setting(
        "gotune_tmpfs_max_gib",
        _NUM,
        8,
        "largest GOCACHE tmpfs (GiB); it is also at most a quarter of RAM",
        _positive,
    ),
    Setting(
        "gotune_min_free_gib",
        _NUM,
        10,
        "free space (GiB) a filesystem needs to be chosen for a cache",
        _non_negative,
    ),
    Setting(
        "gotune_snapshot_minutes",
        (int,),
        30,
        "how often a tmpfs GOCACHE is saved to disk (minutes), besides at shutdown",
        _positive,
    ),
    # Wear and mirror settings: append below.
    # SSD wear (issue #7): thresholds of the periodic check, the mirror's budget at "warn".
    Setting(
        "gotune_wear_warn_percent", (int,), 80,
        "wear status 'warn' from this share of rated endurance used (percent)",
        _wear_percent,
    ),
    Setting(
        "gotune_wear_critical_percent", (int,), 90,
        "wear status 'critical' (the mirror stops caching) from this share used (percent)",
        _wear_percent,
    ),
    Setting(
        "gotune_wear_media_errors_critical", (int,), 1,
        "wear status 'critical' from this many unrecovered media errors (0: never)",
        _non_negative,
    ),
    Setting(
        "gotune_mirror_write_budget_gib", _NUM, 1,
        "GiB per day the mirror may add to its cache while wear status is 'warn'",
        _non_negative,
    ),
    Setting(
        "gotune_wear_textfile_dir", (str,), "/var/lib/prometheus/node-exporter",
        "node_exporter textfile collector directory for gotune_wear.prom ('': no metrics)",
        _plain_abs_path,
    ),
    Setting(
        "gotune_wear_install_smartmontools", (bool,), True,
        "install smartmontools (apt/dnf) when smartctl is absent",
    ),
    Setting(
        "gotune_wear_enabled", (bool,), None,
        "the laptop deploy installs the hourly SSD wear check "
        "(default: when gotune_mirror_enabled, whose cache writes it guards)",
    ),
    # The module mirror (issue #6): deploys/mirror.py.
    Setting(
        "gotune_mirror_enabled", (bool,), False,
        "run the local Go module mirror and point the developers' GOPROXY at it",
    ),
    Setting(
        "gotune_mirror_listen", (str,), "127.0.0.1",
        "address the mirror listens on (loopback; a LAN address needs gotune_mirror_allow)",
        _mirror_listen,
    ),
    Setting("gotune_mirror_port", (int,), 3000, "the mirror's TCP port", _port),
    Setting(
        "gotune_mirror_allow", (list, tuple), [],
        "client networks (CIDR) allowed when the mirror listens on a non-loopback address",
        _cidrs,
    ),
    Setting(
        "gotune_mirror_upstream", (str,), "https://proxy.golang.org",
        "upstream proxies, Go's GOPROXY syntax (',' falls back on 404, '|' on any error)",
        _goproxy_list,
    ),
    Setting(
        "gotune_mirror_cache_dir", (str,), None,
        "the mirror's cache (a GOPROXY tree); default: <mount>/gotune/mirror on the "
        "filesystem the plan chose for GOMODCACHE (/var/cache/gotune/mirror on /)",
        _plain_abs_path,
    ),
    Setting(
        "gotune_mirror_max_cache_gib", _NUM, 20,
        "evict least recently used modules above this size (GiB)",
        _positive,
    ),
    Setting(
        "gotune_mirror_limit_rate", (str,), None,
        "upstream bytes per second, curl-style (512K, 8M); default unlimited",
        _mirror_size,
    ),
    Setting(
        "gotune_mirror_limit_requests", _NUM, None,
        "upstream requests per second; default unlimited",
        _positive,
    ),
]

_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def registry() -> dict[str, Setting]:
    """Every declared setting by name (rebuilt if SETTINGS was appended to at runtime)."""
    if len(_BY_NAME) != len(SETTINGS):
        _BY_NAME.clear()
        _BY_NAME.update({s.name: s for s in SETTINGS})
    return _BY_NAME


class Settings(Mapping[str, Any]):
    """One host's validated settings: every declared key, defaults filled in."""

    def __init__(self, host_name: str, values: dict[str, Any]) -> None:
        self.host_name = host_name
        self._values = values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)

    # Typed views of the settings the planner reads most.
    @property
    def users(self) -> list[str]:
        return list(self._values["gotune_users"])

    def gib(self, key: str) -> int:
        """A GiB setting as bytes."""
        return int(float(self._values[key]) * 1024**3)

    @property
    def wear_enabled(self) -> bool:
        """``gotune_wear_enabled``, or when unset, whether the mirror runs (it writes to flash)."""
        value = self._values["gotune_wear_enabled"]
        return bool(self._values["gotune_mirror_enabled"] if value is None else value)

    @property
    def go_version(self) -> str | None:
        value: str | None = self._values["gotune_go_version"]
        return value


def _type_name(types: tuple[type, ...]) -> str:
    names = {
        list: "list",
        tuple: "list",
        str: "string",
        int: "number",
        float: "number",
        bool: "true/false",
        dict: "mapping",
    }
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def _check_one(setting: Setting, value: Any) -> str | None:
    if value is None and setting.default is None:
        return None
    # bool is an int subclass in Python: True is not a size.
    if isinstance(value, bool) and bool not in setting.types:
        return f"must be a {_type_name(setting.types)}, not true/false"
    if not isinstance(value, setting.types):
        return f"must be a {_type_name(setting.types)}, not {type(value).__name__}"
    return setting.validate(value) if setting.validate else None


def validate_host_data(data: Mapping[str, Any], host_name: str = "@local") -> Settings:
    """Check one host's data; return its Settings or raise GotuneError naming key and host.

    + data: the host's data (pyinfra ``host.data.dict()`` or any mapping); keys
      without the ``gotune_`` prefix are pyinfra's own and ignored
    + host_name: the inventory name, for the message and for defaults
    """
    known = registry()
    for key in sorted(k for k in data if isinstance(k, str) and k.startswith(PREFIX)):
        if key not in known:
            hint = _closest(key, known)
            raise GotuneError(
                f"host {host_name}: unknown setting {key}"
                + (f" (did you mean {hint}?)" if hint else "")
            )
    values: dict[str, Any] = {}
    for name, setting in known.items():
        if name in data:
            problem = _check_one(setting, data[name])
            if problem:
                raise GotuneError(f"host {host_name}: setting {name} {problem}")
            value = data[name]
            values[name] = list(value) if isinstance(value, tuple) else value
        else:
            values[name] = setting.default_for(host_name)
    _check_combinations(values, host_name)
    return Settings(host_name, values)


def _check_combinations(values: dict[str, Any], host_name: str) -> None:
    if values["gotune_go_version"] is None or values["gotune_go_source"] != "tarball":
        return
    for key in ("gotune_go_tarball", "gotune_go_sha256"):
        if values[key] is None:
            raise GotuneError(
                f"host {host_name}: setting {key} is required when gotune_go_version is set "
                "(or set gotune_go_source = 'distro')"
            )


def _closest(key: str, known: Mapping[str, Setting]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
    return matches[0] if matches else None


def validate_inventory(inventory: Any) -> dict[str, Settings]:
    """Validate every host of a pyinfra Inventory; the first problem raises.

    Nothing is connected or changed: this reads inventory data only.
    """
    result: dict[str, Settings] = {}
    for host in inventory:
        result[host.name] = validate_host_data(host.data.dict(), host.name)
    return result


def describe() -> list[dict[str, Any]]:
    """The registry as data (for docs and ``--help`` style listings)."""
    return [
        {"name": s.name, "default": None if callable(s.default) else s.default, "doc": s.doc}
        for s in SETTINGS
    ]
