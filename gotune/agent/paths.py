"""Every absolute path gotune shares between the control machine and a target.

The deploys write these places, the agent reads or writes them on the host, and
verify and undo look at them; one definition each, so the two sides cannot
drift apart. Plain strings: they go into shell commands and unit files as they
are. Standard library only (nothing, in fact).
"""

from __future__ import annotations

# -- the agent -------------------------------------------------------------------------

# Everything gotune installs to run its own code: one directory undo removes whole.
AGENT_DIR = "/opt/gotune"
# The zipapp every unit file and cron line runs (``python3 AGENT_PATH wear ...``).
AGENT_PATH = f"{AGENT_DIR}/gotune.pyz"
# The distribution's python3 before a PATH lookup: root's PATH may lead to a pyenv
# shim or a venv that a systemd unit, a cron job or the developer user cannot run.
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")

# -- state gotune keeps on the host ----------------------------------------------------

# Root's record of what gotune did: undo records, measurements, histories.
STATE_DIR = "/var/lib/gotune"
# What each change replaced, so ``gotune undo`` can put it back (root-only).
UNDO_DIR = f"{STATE_DIR}/undo"
# The plan apply carried out on this host: verify and rollout read it back.
PLAN_PATH = f"{STATE_DIR}/plan.json"
# The NUMA wrappers' A/B figures, keyed by tool; a wrapper is measured again only
# when its content (sha256) changes.
NUMA_RECORD = f"{STATE_DIR}/numa.json"
# Verify's records on the host.
VERIFY_DIR = f"{STATE_DIR}/verify"
# One JSON line per verify result on the host, for the trend (runner as root).
VERIFY_HISTORY = f"{VERIFY_DIR}/history.jsonl"
# Each developer user's Go setup as apply found it, before changing anything: verify's
# "before" variant (written once; undo removes it).
VERIFY_BASELINE = f"{VERIFY_DIR}/baseline.json"

# -- the SSD wear check ----------------------------------------------------------------

# The periodic check's history, state file and lock.
WEAR_STATE_DIR = f"{STATE_DIR}/wear"
# The state the mirror reads to back off at warn and critical.
WEAR_STATE = f"{WEAR_STATE_DIR}/state.json"
# One JSON line per drive per check: the write rate and the 100%-used projection.
WEAR_HISTORY = f"{WEAR_STATE_DIR}/history.jsonl"
# Where Debian's prometheus-node-exporter reads textfile metrics from.
WEAR_TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
# What schedules the check: a systemd timer where systemd runs, else a cron file.
WEAR_TIMER = "/etc/systemd/system/gotune-wear.timer"
WEAR_CRON = "/etc/cron.d/gotune-wear"

# -- the module mirror -----------------------------------------------------------------

# The mirror's cache when the plan names no better filesystem.
MIRROR_CACHE_DIR = "/var/cache/gotune/mirror"
# Where systemd runs the mirror.
MIRROR_UNIT_FILE = "/etc/systemd/system/gotune-mirror.service"
# Elsewhere: a supervisor script (restarts it), its pid file and log, and the cron
# line that starts it at boot.
MIRROR_SUPERVISOR = f"{AGENT_DIR}/gotune-mirror-supervise"
MIRROR_PIDFILE = "/run/gotune-mirror.pid"
MIRROR_LOG = "/var/log/gotune-mirror.log"
MIRROR_CRON = "/etc/cron.d/gotune-mirror"
# The numactl wrapper that runs the mirror's python3 on its NIC's node.
MIRROR_NUMA_PYTHON = f"{AGENT_DIR}/numa/python3"

# -- NUMA wrappers ---------------------------------------------------------------------

# Host-wide, root-owned, first on PATH (profile.d and environment.d put it there).
WRAPPER_DIR = "/usr/local/lib/gotune/bin"
# Login shells read it after the toolchain's snippet in any collation ("zz").
NUMA_PROFILE_SNIPPET = "/etc/profile.d/zz-gotune-numa.sh"
# systemd's user manager reads it for every service of the session, desktop apps included.
NUMA_ENVIRONMENT_D = "/etc/environment.d/60-gotune-numa.conf"

# -- WSL2 ------------------------------------------------------------------------------

# The distro's own WSL settings, read by WSL's init when the distro starts.
WSL_CONF = "/etc/wsl.conf"
# Written (tmpfs: gone once WSL restarts) when apply or undo changed wsl.conf or
# .wslconfig: windows/gotune-wsl.ps1 offers `wsl --shutdown` when it exists.
WSL_RESTART_MARKER = "/run/gotune/wsl-restart-needed"
# The measured cost of the Windows PATH entries that decided [interop] appendWindowsPath.
WSL_RECORD = f"{STATE_DIR}/wsl.json"
# gopls and VS Code watch every folder of a workspace with inotify.
WSL_SYSCTL_FILE = "/etc/sysctl.d/60-gotune-inotify.conf"
INOTIFY_WATCHES = "/proc/sys/fs/inotify/max_user_watches"

# -- caches ----------------------------------------------------------------------------

# Root-owned parent of gotune's cache directories on the root filesystem.
CACHE_ROOT = "/var/cache/gotune"
# Mount points of the per-user GOCACHE tmpfs (``<TMPFS_ROOT>/<user>``).
TMPFS_ROOT = f"{CACHE_ROOT}/tmpfs"
# Per-user cache directories when the chosen filesystem is ``/``.
USERS_CACHE_ROOT = f"{CACHE_ROOT}/users"

# -- the team build cache --------------------------------------------------------------

# The site's cache when the plan names no better filesystem.
BUILDCACHE_CACHE_DIR = f"{CACHE_ROOT}/buildcache"
# Where systemd runs the site; elsewhere its supervisor, pid file, log and boot cron line.
BUILDCACHE_UNIT_FILE = "/etc/systemd/system/gotune-buildcache.service"
BUILDCACHE_SUPERVISOR = f"{AGENT_DIR}/gotune-buildcache-supervise"
BUILDCACHE_PIDFILE = "/run/gotune-buildcache.pid"
BUILDCACHE_LOG = "/var/log/gotune-buildcache.log"
BUILDCACHE_CRON = "/etc/cron.d/gotune-buildcache"
# The write token: the site keeps its SHA-256 (readable by the service only); a builder
# keeps the token, one copy per developer user, readable by that user only.
BUILDCACHE_ETC = "/etc/gotune/buildcache"
BUILDCACHE_TOKEN_DIGEST = f"{BUILDCACHE_ETC}/token.sha256"
BUILDCACHE_TOKENS = f"{BUILDCACHE_ETC}/tokens"
# The GOCACHEPROG helper: its Go source, the binary the host's go built from it, and the
# SHA-256 of the source it was built from (rebuilt when the source changes).
BUILDCACHE_HELPER_DIR = "/usr/local/lib/gotune/buildcache"
BUILDCACHE_HELPER_SRC = f"{BUILDCACHE_HELPER_DIR}/src"
BUILDCACHE_HELPER = f"{BUILDCACHE_HELPER_DIR}/gotune-cacheprog"
BUILDCACHE_HELPER_SHA = f"{BUILDCACHE_HELPER}.source-sha256"
# Where the helper's measurement keeps the generated workload and its module cache: one
# path on every host, because go's action IDs for packages outside GOROOT name their
# directory (cmd/go/internal/work: buildActionID, without -trimpath), so a reader finds
# what a builder put only for the same tree at the same path.
BUILDCACHE_MEASURE_ROOT = "/var/tmp/gotune-buildcache"
# The helper's A/B figures (cold build with the site vs without, warm no-op with the
# helper vs without); the next plan keeps GOCACHEPROG only where they say it helps.
BUILDCACHE_RECORD = f"{STATE_DIR}/buildcache.json"
