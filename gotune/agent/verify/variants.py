"""The environments verify compares, and where each one's own verify caches go.

- ``tuned``: the user's login environment now (GOENV file, exported variables);
- ``before``: the user's environment as apply found it before changing anything
  (``baseline``), rebuilt from the recorded ``go env`` values on top of Go's defaults
  and measured again now, side by side;
- ``default``: Go's own defaults on the same machine and the same ``go`` binary:
  ``GOENV=off`` and every ``GO*`` variable unset, so caches fall to Go's defaults
  under the user's home.

Two variants with the same ``go env`` values (``COMPARED_KEYS``) and the same go
binary are one environment, measured once: ``before`` is often Go's default, and is
``tuned`` where apply changed nothing a build sees.

Each variant builds into its own verify caches, ``gotune-verify-<variant>``
directories inside that variant's GOCACHE and GOMODCACHE (same filesystem, never the
user's own cache entries), kept between runs so warm benchmarks stay warm. A
``before`` cache that apply moved away is not re-created where it was (undo moves it
back there): its verify cache goes beside it, into the nearest directory that still
exists, as long as that is still the same filesystem; otherwise ``before`` is "not
measurable", and says why.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from gotune.agent.mounts import MountEntry
from gotune.agent.verify import places
from gotune.agent.verify.process import RunnerError
from gotune.agent.verify.shells import go_env_values

T = TypeVar("T")

TUNED, BEFORE, DEFAULT = "tuned", "before", "default"
# The order runs start in (then reversed every other pair, see ``order``).
ORDER = (TUNED, BEFORE, DEFAULT)
# What makes two environments the same for a build: where it reads and writes (and the
# GOCACHEPROG helper that serves its cache), how it fetches modules, and what it compiles for.
COMPARED_KEYS = ("GOCACHE", "GOMODCACHE", "GOTMPDIR", "GOPATH", "GOPROXY", "GOFLAGS",
                 "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GONOPROXY", "GOINSECURE",
                 "GOTOOLCHAIN", "CGO_ENABLED", "GOAMD64", "GOEXPERIMENT", "GOCACHEPROG")
# The places a build touches; each variant's are described in the report.
PLACE_KEYS = ("GOCACHE", "GOMODCACHE", "GOTMPDIR")
# Variables the default variant drops so Go falls back to its own defaults.
DEFAULT_DROP_PREFIX = "GO"
VERIFY_DIR_PREFIX = "gotune-verify-"


def default_env(login: dict[str, str]) -> dict[str, str]:
    """The default variant's environment: the login one without any GO* variable."""
    env = {k: v for k, v in login.items() if not k.startswith(DEFAULT_DROP_PREFIX)}
    env["GOENV"] = "off"
    return env


def before_env(login: dict[str, str], recorded: dict[str, str]) -> dict[str, str]:
    """The baseline's environment now: Go's defaults plus every recorded value that is set."""
    env = default_env(login)
    env.update({k: str(v) for k, v in recorded.items() if k in COMPARED_KEYS and v})
    return env


def nearest_existing(path: str) -> str:
    """``path`` itself, or its closest ancestor that exists."""
    probe = os.path.abspath(path)
    while probe != "/" and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    return probe


def verify_dir(real: str, variant: str, key: str, beside: bool) -> str:
    """Where ``variant`` keeps its own copy of the cache ``real`` (a GOCACHE or GOMODCACHE).

    + real: the variant's real cache directory
    + beside: when ``real`` is gone, use its nearest existing ancestor rather than
      create it again (``before``: apply moved it, undo will move it back)
    """
    if not beside or os.path.isdir(real):
        return os.path.join(real, VERIFY_DIR_PREFIX + variant)
    return os.path.join(nearest_existing(real), f"{VERIFY_DIR_PREFIX}{variant}-{key.lower()}")


class Variant:
    """One arm of the comparison: its environment, go binary and verify caches.

    + name: ``tuned``, ``before`` or ``default``
    + env: its whole environment (GOCACHE is replaced by its verify cache)
    + cache_root, modcache_root: its real GOCACHE and GOMODCACHE
    + go: the go binary it builds with (None: the runner's)
    + moved: the keys whose real directory existed once and is gone (see ``verify_dir``)
    """

    def __init__(self, name: str, env: dict[str, str], cache_root: str, go: str | None = None,
                 modcache_root: str | None = None, moved: frozenset[str] = frozenset()) -> None:
        self.name = name
        self.env = dict(env)
        self.go = go
        self.version = ""
        self.cache = verify_dir(cache_root, name, "GOCACHE", "GOCACHE" in moved)
        self.env["GOCACHE"] = self.cache
        self.modcache = (verify_dir(modcache_root, name, "GOMODCACHE", "GOMODCACHE" in moved)
                         if modcache_root else None)
        self.error: str | None = None  # why it cannot be measured


def order(variants: list[T], pair: int) -> list[T]:
    """The variants of run pair ``pair``: A B C, then C B A, then A B C ...

    Interleaving spreads slow drifts (another job starting, the CPU warming up)
    over every variant; alternating which goes first cancels the effect of
    running right after another one (a warm page cache, a just-woken CPU).
    """
    return list(variants) if pair % 2 == 0 else list(reversed(variants))


def _temp_dir(env: dict[str, str]) -> str:
    """Where a build writes temporary files: GOTMPDIR, else $TMPDIR, else /tmp."""
    return env.get("GOTMPDIR") or env.get("TMPDIR") or "/tmp"


def describe(v: Variant, values: dict[str, str], table: list[MountEntry]) -> dict[str, Any]:
    """What the report says about a variant: its Go settings and where each place lives."""
    where = {"GOCACHE": v.cache, "GOMODCACHE": v.modcache or values.get("GOMODCACHE", ""),
             "GOTMPDIR": _temp_dir(v.env)}
    return {
        "env": {k: values.get(k, "") for k in (*PLACE_KEYS, "GOPROXY", "GOFLAGS",
                                                  "GOCACHEPROG")},
        "go": v.go, "go_version": v.version, "verify_caches": {
            "GOCACHE": v.cache, "GOMODCACHE": v.modcache},
        "places": {k: places.place(p, table) | {"path": p} for k, p in where.items() if p},
        "unmeasurable": v.error,
    }  # fmt: skip


def filesystem_gone(key: str, recorded: dict[str, Any] | None,
                    table: list[MountEntry]) -> str | None:
    """Why a recorded place cannot be re-created on its own filesystem, or None."""
    if not recorded or not recorded.get("path"):
        return None
    now = places.place(str(recorded["path"]), table)
    if (now.get("mount"), now.get("fstype")) == (recorded.get("mount"), recorded.get("fstype")):
        return None
    return (f"{key} {recorded['path']} was on {recorded.get('fstype')} at "
            f"{recorded.get('mount')}, which is no longer mounted (its nearest existing "
            f"directory, {now.get('resolved')}, is on {now.get('fstype')} at {now.get('mount')})")


def build(go: str, login: dict[str, str], baseline: dict[str, Any] | None,
          baseline_error: str | None, table: list[MountEntry],
          exists: Callable[[str], bool] = os.path.exists) -> tuple[list[Variant], dict[str, Any]]:
    """The variants to run and every variant's description (``same_as``, ``unmeasurable``).

    + go: the go on the user's login PATH now
    + login: the user's login environment now
    + baseline: this user's record from the host's baseline (None: none recorded)
    + baseline_error: why there is none (no file, garbled), for the report
    """
    tuned_env, plain_env = dict(login), default_env(login)
    values = {TUNED: go_env_values(go, tuned_env, COMPARED_KEYS),
              DEFAULT: go_env_values(go, plain_env, COMPARED_KEYS)}
    tuned = Variant(TUNED, tuned_env, values[TUNED]["GOCACHE"], go, values[TUNED]["GOMODCACHE"])
    default = Variant(DEFAULT, plain_env, values[DEFAULT]["GOCACHE"], go,
                      values[DEFAULT]["GOMODCACHE"])
    run = [tuned, default]
    described: dict[str, Any] = {}
    before, info = _before(go, login, baseline, baseline_error, values, table, exists)
    if before is not None:
        run.insert(1, before)
        values[BEFORE] = info.pop("values")
    described[BEFORE] = info
    return run, {"values": values, **described}


def _before(go: str, login: dict[str, str], baseline: dict[str, Any] | None,
            baseline_error: str | None, values: dict[str, dict[str, str]],
            table: list[MountEntry], exists: Callable[[str], bool],
            ) -> tuple[Variant | None, dict[str, Any]]:
    """The before variant to run (None: not run) and what to say about it."""
    if baseline is None:
        return None, {"missing": baseline_error or "no baseline recorded on this host: "
                      "gotune apply records one before it changes anything"}
    info: dict[str, Any] = {"recorded": baseline.get("recorded"),
                            "baseline_places": baseline.get("places") or {}}
    if baseline.get("error") or not baseline.get("go"):
        info["unmeasurable"] = (f"the baseline has no go environment: "
                                f"{baseline.get('error') or 'go was not on the login PATH'}")
        return None, info
    recorded = {k: str(v) for k, v in (baseline.get("env") or {}).items()}
    old_go = str(baseline["go"])
    bin_go = old_go if exists(old_go) else go
    if bin_go != old_go:
        info["note"] = (f"{old_go} ({baseline.get('go_version') or 'the go of then'}) is gone: "
                        f"measured with {go}")
    env = before_env(login, recorded)
    try:
        now = go_env_values(bin_go, env, COMPARED_KEYS)
    except (RunnerError, OSError) as exc:
        info["unmeasurable"] = f"go env in the baseline environment: {exc}"
        return None, info
    same_go = os.path.realpath(bin_go) == os.path.realpath(go)
    for other in (TUNED, DEFAULT):  # all three the same: apply changed nothing builds see
        if same_go and now == values[other]:
            info["same_as"] = other
            return None, info
    for key in PLACE_KEYS:
        gone = filesystem_gone(key, (baseline.get("places") or {}).get(key), table)
        if gone:
            info["unmeasurable"] = gone
            return None, info
    recorded_places = baseline.get("places") or {}
    moved = frozenset(k for k in PLACE_KEYS if (recorded_places.get(k) or {}).get("exists")
                      and now.get(k) and not os.path.isdir(now[k]))
    if "GOTMPDIR" in moved:
        env["GOTMPDIR"] = verify_dir(now["GOTMPDIR"], BEFORE, "GOTMPDIR", beside=True)
    variant = Variant(BEFORE, env, now["GOCACHE"], bin_go, now["GOMODCACHE"], moved)
    info["values"] = now
    return variant, info
