# shellcheck shell=sh
# gotune's collector: every raw fact of a host in one POSIX sh run (dash too).
#
# facts/collect.py reads this file as package data and sends it as one command:
# a prelude that sets the inputs below (each shlex-quoted), this program, and
# one sed that frames and encodes the whole output (see collect.py's docstring).
#   R                root prefix the paths are read below ("" on a live host)
#   USERS            the developer users (space-separated, names checked in Python)
#                    whose passwd entry, go env, GOENV file and exports are read
#   MARKER           this run's random marker: sed strips it from the lines
#                    that start with it (headers, banners) and puts "|" before
#                    every other line (content), so no file can forge a header
#   TOOL_TIMEOUT     seconds for a tool that may block long (go env, dmidecode)
#   STATVFS_TIMEOUT  seconds for a quick look-up: statvfs, getent, id
#   WINDOWS_TIMEOUT  seconds for a Windows program run through WSL's interop
#   WSL_PROFILE      the Windows user's profile as a Linux path (gotune_wsl_windows_profile),
#                    "" to ask Windows through interop
#   WSL_LOOKUP_ROUNDS, WSL_LOOKUPS, WSL_STATS, WSL_HISTORY_LINES, WSL_CANDIDATES
#                    how much the WSL section measures and searches (see collect.py)
#
# A record is a header line "@@TAG LEN:NAME" (NAME a path below the root, or a
# command's name; LEN its length in bytes, so a name may hold any byte), then
# its content; content of many lines ends with "\n@@end STATUS". Tags: V first
# line of a file, C whole file, L symlink target, E exists, N and B the names
# and lines of a batch read, X a command's output.
#
# Shell variables are global: the helpers hand results over in $value, $out,
# $rel and $newlines, and each topic keeps its own loop variables.

LC_ALL=C; export LC_ALL
NL='
'
# awk reads again, in one process for many files, what read found empty.
HAVE_AWK=; command -v awk >/dev/null 2>&1 && HAVE_AWK=1
# stat -f fields of a statvfs record: block size, blocks, free, available.
STATVFS_FORMAT='%S %b %f %a'

# --- Records: headers behind the marker ---------------------------------------

# Print each line of $1 (a name may hold newlines) behind the marker.
emit_marked_lines() { remaining=$1
  while :; do case $remaining in
    *"$NL"*) printf '%s%s\n' "$MARKER" "${remaining%%"$NL"*}"; remaining=${remaining#*"$NL"};;
    *) printf '%s%s\n' "$MARKER" "$remaining"; return 0;;
  esac; done; }

# Print the header of a record: tag $1, name $2.
emit_header() { case $2 in
  *"$NL"*) emit_marked_lines "@@$1 ${#2}:$2";;
  *) printf '%s@@%s %d:%s\n' "$MARKER" "$1" "${#2}" "$2";;
esac; }

# Print the V record of path $1 with $value: one printf, one write, in the common case.
emit_value() { rel=${1#"$R"}; case $rel in
  *"$NL"*) emit_header V "$rel"; printf '%s\n' "$value";;
  *) printf '%s@@V %d:%s\n%s\n' "$MARKER" "${#rel}" "$rel" "$value";;
esac; }

# --- Reading files -------------------------------------------------------------

# V records: the first line of each regular file (a FIFO or device in a tree
# would block); what read finds empty stays in "$@" and is read again at the end.
read_values() { for f in "$@"; do shift
  [ -f "$f" ] || continue
  value=; IFS= read -r value < "$f"
  if [ -n "$value" ]; then emit_value "$f"; else set -- "$@" "$f"; fi
done
[ $# -gt 0 ] && reread_values "$@"; return 0; }

# As read_values, but what read finds empty waits in $DEFERRED (one path a
# line) for flush_deferred, so that one awk reads it for all CPUs.
read_values_deferred() { for f in "$@"; do
  [ -f "$f" ] || continue
  value=; IFS= read -r value < "$f"
  if [ -n "$value" ]; then emit_value "$f"
  else case $f in *"$NL"*) reread_values "$f";; *) DEFERRED=$DEFERRED$f$NL;; esac; fi
done; }

# Read again, in one go, every path deferred so far.
flush_deferred() { [ -n "$DEFERRED" ] || return 0
  set -f; saved_ifs=$IFS; IFS=$NL
  # shellcheck disable=SC2086 # split on purpose: one path a line, globbing off
  set -- $DEFERRED
  IFS=$saved_ifs; set +f; DEFERRED=; reread_values "$@"; }

# The V record of file $1's first line as cat reads it (the "." keeps command
# substitution from eating a file that is only newlines).
read_value_by_cat() {
  value=$(cat -- "$1"; echo .); value=${value%%"$NL"*}; value=${value%.}; emit_value "$1"; }

# dash reads byte by byte, which sysfs binary attributes (cpulist) answer with
# nothing: what read found empty is read again, the first lines of all by one
# awk. mawk stops at a file it cannot read: that one goes to cat alone, and
# when awk read nothing at all, so do the rest.
reread_values() {
  [ -n "$HAVE_AWK" ] || { for f in "$@"; do read_value_by_cat "$f"; done; return 0; }
  while [ $# -gt 1 ]; do
    out=$(awk 'BEGIN { for (i = 1; i < ARGC; i++) {
      l = ""; getline l < ARGV[i]; print l; close(ARGV[i]) } }' "$@" </dev/null 2>/dev/null
      printf '%d.' "$?")
    progressed=0
    while case $out in *"$NL"*) true;; *) false;; esac; do
      [ $# -gt 0 ] || break
      value=${out%%"$NL"*}; out=${out#*"$NL"}; emit_value "$1"; shift; progressed=1
    done
    [ "$out" = 0. ] && return 0
    [ $# -gt 0 ] && { read_value_by_cat "$1"; shift; }
    [ $progressed = 0 ] && break
  done
  for f in "$@"; do read_value_by_cat "$f"; done; }

# Set $newlines to how many newlines $1 holds.
count_newlines() { newlines=0; text=$1
  while case $text in *"$NL"*) true;; *) false;; esac; do
    text=${text#*"$NL"}; newlines=$((newlines+1))
  done; }

# C records: each regular file whole, then cat's status.
read_whole() { for f in "$@"; do
  [ -f "$f" ] || continue
  rel=${f#"$R"}; emit_header C "$rel"
  cat -- "$f"; printf '\n@@end %d\n' "$?"
done; }

# The L record of symlink $1 alone.
read_link() { rel=${1#"$R"}; emit_header L "$rel"; readlink -- "$1"; printf '\n@@end %d\n' "$?"; }

# L records: symlink targets, all by one readlink; trusted only when every
# link answered with exactly one line, else each link alone.
read_links() { for f in "$@"; do shift; [ -L "$f" ] && set -- "$@" "$f"; done
  [ $# -gt 0 ] || return 0
  [ $# = 1 ] && { read_link "$1"; return 0; }
  out=$(readlink -- "$@" </dev/null 2>/dev/null; printf '%d.' "$?")
  count_newlines "$out"
  if [ "${out##*"$NL"}" = 0. ] && [ $newlines = $# ]; then
    for f in "$@"; do rel=${f#"$R"}; emit_header L "$rel"
      printf '%s\n\n@@end 0\n' "${out%%"$NL"*}"; out=${out#*"$NL"}; done
  else for f in "$@"; do read_link "$f"; done; fi; }

# An N record per regular file, then one B record: their lines by one cat (for
# binary attributes; the parser trusts it only with exactly one line a file).
read_values_batch() { for f in "$@"; do shift
    [ -f "$f" ] && { set -- "$@" "$f"; rel=${f#"$R"}; emit_header N "$rel"; }
  done
  [ $# -gt 0 ] || return 0
  emit_header B ""; cat -- "$@"; printf '\n@@end %d\n' "$?"; }

# E records: each path that exists (a dangling symlink counts).
note_exists() { for f in "$@"; do
  if [ -e "$f" ] || [ -L "$f" ]; then rel=${f#"$R"}; emit_header E "$rel"; fi
done; }

# --- Running tools -------------------------------------------------------------

# The X record named $1: the output and status of the command that follows.
run_command() {
  name=$1; shift; emit_header X "$name"; "$@" </dev/null 2>/dev/null; printf '\n@@end %d\n' "$?"; }

# Run a command under timeout(1) when there is one; $1 is the seconds allowed.
with_timeout() { if command -v timeout >/dev/null 2>&1; then timeout "$@"; else shift; "$@"; fi; }

# The X record "statvfs $1": statvfs of the file system at path $2.
statvfs_one() {
  run_command "statvfs $1" with_timeout "$STATVFS_TIMEOUT" stat -f -c "$STATVFS_FORMAT" -- "$2"; }

# statvfs of every mount by one stat; if it fails or times out (one hung
# mount), each mount alone, so the others are still seen.
statvfs_all() { [ $# -gt 0 ] || return 0
  out=$(with_timeout "$STATVFS_TIMEOUT" stat -f -c "$STATVFS_FORMAT" -- "$@" </dev/null 2>/dev/null
    printf '%d.' "$?")
  count_newlines "$out"
  if [ $# -gt 1 ] && [ "${out##*"$NL"}" = 0. ] && [ $newlines = $# ]; then
    for f in "$@"; do emit_header X "statvfs $f"
      printf '%s\n\n@@end 0\n' "${out%%"$NL"*}"; out=${out#*"$NL"}; done
  else for f in "$@"; do statvfs_one "$f" "$f"; done; fi; }

# --- Topics, in the order they are printed --------------------------------------

# The banner the parser looks for first, and whether this is a live host.
emit_banner() {
  printf '%s@@gotune 1\n' "$MARKER"
  [ -z "$R" ] && printf '%s@@live 1\n' "$MARKER"; }

# Whole files of procfs and /etc; the CPU ranges, kernel, host name and container.
collect_system() {
  read_whole "$R/proc/cpuinfo" "$R/proc/meminfo" "$R/proc/self/status" \
    "$R/proc/self/mountinfo" "$R/proc/mounts" "$R/proc/self/cgroup" "$R/proc/self/cpuset" \
    "$R/etc/os-release" "$R/usr/lib/os-release" "$R/run/udev/data/+dmi:id" \
    "$R/proc/1/environ" "$R/proc/version"
  read_values "$R/sys/devices/system/cpu/online" "$R/sys/devices/system/cpu/present" \
    "$R/sys/devices/system/cpu/possible" "$R/sys/devices/cpu_core/cpus" \
    "$R/sys/devices/cpu_atom/cpus" "$R/proc/sys/kernel/osrelease" \
    "$R/proc/sys/kernel/hostname" "$R/etc/hostname" "$R/run/systemd/container"; }

# One batch read of the first per-CPU topology attribute (of those named) the
# kernel has: binary attributes, so one cat for all CPUs.
read_topology_batch() { for attr in "$@"; do
    set -- "$R"/sys/devices/system/cpu/cpu[0-9]*/topology/"$attr"  # the loop keeps its list
    [ -f "$1" ] && { read_values_batch "$@"; return 0; }
  done; }

# Each CPU: online, package, core, die, frequencies and capacity; then which
# threads share a core, and which cores a package.
collect_cpus() { DEFERRED=
  for d in "$R"/sys/devices/system/cpu/cpu[0-9]*; do
    note_exists "$d"
    read_values_deferred "$d/online" "$d/topology/physical_package_id" "$d/topology/core_id" \
      "$d/topology/die_id" "$d/cpufreq/cpuinfo_max_freq" "$d/cpufreq/base_frequency" \
      "$d/cpu_capacity"
  done
  flush_deferred
  read_topology_batch thread_siblings_list thread_siblings core_cpus_list core_cpus
  read_topology_batch package_cpus_list core_siblings_list package_cpus core_siblings; }

# NUMA nodes: their CPUs, distances and memory; memory tiers (CXL, HBM).
collect_numa() {
  read_values "$R/sys/devices/system/node/online" "$R/sys/devices/system/node/possible" \
    "$R/sys/devices/system/node/has_cpu" "$R/sys/devices/system/node/has_memory"
  set --
  for d in "$R"/sys/devices/system/node/node[0-9]*; do
    note_exists "$d"; set -- "$@" "$d/cpulist" "$d/cpumap" "$d/distance"
  done
  read_values "$@"
  set --
  for d in "$R"/sys/devices/system/node/node[0-9]*; do set -- "$@" "$d/meminfo"; done
  read_whole "$@"
  for d in "$R"/sys/devices/virtual/memory_tiering/memory_tier[0-9]*; do
    note_exists "$d"; read_values "$d/nodelist" "$d/nodes"
  done; }

# The DIMMs EDAC knows: type, size and slot, without root.
collect_dimms() {
  for d in "$R"/sys/devices/system/edac/mc/mc[0-9]*/dimm[0-9]* \
           "$R"/sys/devices/system/edac/mc/mc[0-9]*/rank[0-9]*; do
    read_values "$d/dimm_mem_type" "$d/size" "$d/dimm_label" "$d/dimm_location" \
      "$d/dimm_dev_type"
  done; }

# Run the function $1 with every entry of /sys/class/block (/sys/block on old
# kernels), dot-names included.
with_block_devices() { topic=$1
  set -- "$R"/sys/class/block/* "$R"/sys/class/block/.[!.]* "$R"/sys/class/block/..?*
  { [ -e "$1" ] || [ -L "$1" ]; } ||
    set -- "$R"/sys/block/* "$R"/sys/block/.[!.]* "$R"/sys/block/..?*
  "$topic" "$@"; }

# Each block device: partition or disk; a disk's size, rotational, model,
# NUMA node, device-mapper name and holders; then the udev record of each disk.
collect_block_devices() { entries=$#
  for d in "$@"; do
    [ -e "$d" ] || [ -L "$d" ] || continue
    value=; read_values "$d/dev"; devnum=$value; note_exists "$d/partition"
    [ -e "$d/partition" ] && continue
    read_values "$d/size" "$d/queue/rotational" "$d/removable" "$d/device/model" \
      "$d/device/vendor" "$d/device/type" "$d/device/numa_node" \
      "$d/device/device/numa_node" "$d/dm/name"
    case $devnum in *[!0-9:]*|'') ;; *) set -- "$@" "$R/run/udev/data/b$devnum";; esac
    note_exists "$d"/slaves/*
  done
  shift $entries; read_whole "$@"; }

# The links of the block devices (and their drivers), then of the NICs: one list.
collect_links() { entries=$#
  for d in "$@"; do
    [ -e "$d" ] || [ -L "$d" ] || continue
    set -- "$@" "$d"; [ -e "$d/partition" ] || set -- "$@" "$d/device/driver"
  done
  shift $entries
  for d in "$R"/sys/class/net/* "$R"/sys/class/net/.[!.]* "$R"/sys/class/net/..?*; do
    [ -e "$d" ] || [ -L "$d" ] || continue
    set -- "$@" "$d" "$d/device/driver"
  done
  read_links "$@"; }

# Each NIC: state, speed, carrier, NUMA node and type.
collect_nics() { set --
  for d in "$R"/sys/class/net/* "$R"/sys/class/net/.[!.]* "$R"/sys/class/net/..?*; do
    [ -e "$d" ] || [ -L "$d" ] || continue
    set -- "$@" "$d/operstate" "$d/speed" "$d/carrier" "$d/device/numa_node" "$d/type"
  done
  read_values "$@"; }

# The machine's maker and model, hypervisor, and the marks of WSL, containers and VMs.
collect_platform() {
  read_values "$R/sys/class/dmi/id/sys_vendor" "$R/sys/class/dmi/id/product_name" \
    "$R/sys/class/dmi/id/board_vendor" "$R/sys/class/dmi/id/bios_vendor" \
    "$R/sys/class/dmi/id/product_version" "$R/sys/hypervisor/type"
  note_exists "$R/proc/sys/fs/binfmt_misc/WSLInterop" \
    "$R/proc/sys/fs/binfmt_misc/WSLInterop-late" "$R/run/WSL" "$R/.dockerenv" \
    "$R/run/.containerenv" "$R/run/systemd/system" "$R/proc/vz" "$R/proc/bc" "$R/proc/xen"; }

# The limit files ($3...) in a cgroup ($1 the hierarchy, $2 the path) and in
# each parent: the tightest limit wins, so the parser needs them all.
walk_cgroup() { cg_base=$1; cg_path=$2; shift 2
  case $cg_path in *..*) return;; esac
  while :; do
    for cg_file in "$@"; do read_values "$cg_base$cg_path/$cg_file"; done
    [ -z "$cg_path" ] && break; [ "$cg_path" = / ] && break
    cg_path=${cg_path%/*}
  done; }

# CPU and memory limits along this process's cgroups, v2 and v1.
collect_cgroup_limits() { [ -f "$R/proc/self/cgroup" ] || return 0
  while IFS= read -r entry; do
    fields=${entry#*:}; controllers=${fields%%:*}; cgroup=${fields#*:}
    case ,$controllers, in
      ,,) walk_cgroup "$R/sys/fs/cgroup" "$cgroup" cpu.max memory.max;;
      *,memory,*) walk_cgroup "$R/sys/fs/cgroup/memory" "$cgroup" memory.limit_in_bytes;;
    esac
    case ,$controllers, in *,cpu,*)
      walk_cgroup "$R/sys/fs/cgroup/cpu,cpuacct" "$cgroup" cpu.cfs_quota_us cpu.cfs_period_us
      walk_cgroup "$R/sys/fs/cgroup/cpu" "$cgroup" cpu.cfs_quota_us cpu.cfs_period_us;;
    esac
  done < "$R/proc/self/cgroup"; }

# Live host: the machine type, our uid, the DIMMs from dmidecode (root only)
# and the virtualization systemd sees.
collect_tools() {
  run_command uname uname -m
  out=$(id -u </dev/null 2>/dev/null; printf '\n@@end %d' "$?"); uid=${out%%"$NL"*}
  emit_header X id; printf '%s\n' "$out"
  if [ "$uid" = 0 ] && command -v dmidecode >/dev/null 2>&1; then
    run_command dmidecode with_timeout "$TOOL_TIMEOUT" dmidecode -t 17
  fi
  command -v systemd-detect-virt >/dev/null 2>&1 &&
    run_command detect-virt with_timeout "$TOOL_TIMEOUT" systemd-detect-virt; }

# Live host: statvfs of every local mount; network and pseudo file systems are
# never asked (a hung server would stall the run, and they hold no caches).
collect_mount_space() { [ -r /proc/self/mountinfo ] || return 0
  set --
  while IFS=' ' read -r _id _parent _devno _root mountpoint rest; do
    fstype=${rest#* - }; fstype=${fstype%% *}
    case $fstype in
      nfs*|cifs|smb*|9p|drvfs|virtiofs|sshfs|afs|ceph|glusterfs) continue;;
      lustre|beegfs|gpfs|fuse|fuse.*|autofs|proc|sysfs|cgroup|cgroup2) continue;;
      devpts|devtmpfs|mqueue|debugfs|tracefs|securityfs|pstore|bpf|configfs) continue;;
      fusectl|binfmt_misc|nsfs|efivarfs|rpc_pipefs|hugetlbfs|squashfs|selinuxfs) continue;;
    esac
    case $mountpoint in
      *\\*)  # octal escapes: decoded for stat, the record keeps the raw name
        decoded=$(printf '%s\n' "$mountpoint" | sed 's/\\\([0-7][0-7][0-7]\)/\\0\1/g')
        decoded=$(printf '%b.' "$decoded"); decoded=${decoded%.}
        statvfs_one "$mountpoint" "$decoded";;
      *) set -- "$@" "$mountpoint";;
    esac
  done < /proc/self/mountinfo
  statvfs_all "$@"; }

# What runs as the developer user in their login shell: `go env -json` of the
# go their PATH finds (else /usr/local/go), the variables Go's defaults follow,
# their GOENV file ("@@goenvfile 1 PATH" and its lines; 0 when absent) and the
# lines of their shell files that export Go settings over it.
# shellcheck disable=SC2016 # expanded by the user's shell, not by this one
GO_ENV_SCRIPT='cd / || exit 1
o=$GOTOOLCHAIN
export GOTOOLCHAIN=local
g=$(command -v go) || g=
[ -z "$g" ] && [ -x /usr/local/go/bin/go ] && g=/usr/local/go/bin/go
[ -n "$g" ] && "$g" env -json
printf "\n@@vars\nGO=%s\nGOTOOLCHAIN=%s\nHOME=%s\n" "$g" "$o" "$HOME"
printf "XDG_CACHE_HOME=%s\nGOPATH=%s\nGOCACHE=%s\nGOMODCACHE=%s\n" \
  "$XDG_CACHE_HOME" "$GOPATH" "$GOCACHE" "$GOMODCACHE"
f=$GOENV
[ -n "$g" ] && f=$("$g" env GOENV 2>/dev/null)
[ -z "$f" ] && f=${XDG_CONFIG_HOME:-$HOME/.config}/go/env
h=0; [ "$f" != off ] && [ -f "$f" ] && h=1
printf "\n@@goenvfile %s %s\n" "$h" "$f"
[ "$h" = 1 ] && cat -- "$f"
printf "\n@@exports\n"
x="^[[:space:]]*(export[[:space:]]+|set[[:space:]]+-[a-zA-Z]*x[a-zA-Z]*[[:space:]]+)?"
x="$x(GOCACHE|GOMODCACHE|GOPROXY|GOTMPDIR|GOENV|GOCACHEPROG)([=[:space:]])"
for s in .profile .bash_profile .bash_login .bashrc .zshenv .zprofile .zshrc \
    .config/fish/config.fish /etc/environment; do
  case $s in /*) p=$s;; *) p=$HOME/$s;; esac
  [ -f "$p" ] && grep -nE "$x" "$p" | while IFS= read -r l; do printf "%s:%s\\n" "$p" "$l"; done
done
true'

# Live host: user $1's passwd entry and group, and their go env when we are that
# user or root (runuser, else su); otherwise a skip banner says why it is missing.
collect_user() { dev_user=$1
  command -v getent >/dev/null 2>&1 &&
    run_command "passwd $dev_user" with_timeout "$STATVFS_TIMEOUT" getent passwd -- "$dev_user"
  run_command "group $dev_user" with_timeout "$STATVFS_TIMEOUT" id -gn -- "$dev_user"
  if [ "$me" = "$dev_user" ]; then
    run_command "goenv $dev_user" with_timeout "$TOOL_TIMEOUT" sh -lc "$GO_ENV_SCRIPT"
  elif [ "$uid" = 0 ]; then
    if command -v runuser >/dev/null 2>&1; then
      run_command "goenv $dev_user" with_timeout "$TOOL_TIMEOUT" runuser -l "$dev_user" \
        -s /bin/sh -c "$GO_ENV_SCRIPT"
    else
      run_command "goenv $dev_user" with_timeout "$TOOL_TIMEOUT" su -l -s /bin/sh \
        -c "$GO_ENV_SCRIPT" "$dev_user"
    fi
  else
    printf '%s@@skip goenv %s not-root\n' "$MARKER" "$dev_user"
  fi; }

# Live host: every developer user (without getent, /etc/passwd is read once).
collect_users() { [ -n "$USERS" ] || return 0
  me=$(with_timeout "$STATVFS_TIMEOUT" id -un </dev/null 2>/dev/null)
  command -v getent >/dev/null 2>&1 || read_whole /etc/passwd
  # shellcheck disable=SC2086 # the names split on spaces: checked in Python, no globs
  for dev_user in $USERS; do collect_user "$dev_user"; done; }

# gotune's own state: the plan apply carried out, the NUMA wrappers' and the build
# cache helper's figures, the mirror, build cache and wear check it installed (and
# whether cron runs), and the undo records.
collect_gotune_state() {
  read_whole "$R/var/lib/gotune/plan.json" "$R/var/lib/gotune/numa.json" \
    "$R/etc/systemd/system/gotune-mirror.service" "$R/opt/gotune/gotune-mirror-supervise"
  read_whole "$R/var/lib/gotune/buildcache.json" \
    "$R/etc/systemd/system/gotune-buildcache.service" \
    "$R/opt/gotune/gotune-buildcache-supervise" \
    "$R/usr/local/lib/gotune/buildcache/gotune-cacheprog.source-sha256"
  note_exists "$R/etc/systemd/system/gotune-wear.timer" "$R/etc/cron.d/gotune-wear" \
    "$R/usr/sbin/cron" "$R/usr/sbin/crond" "$R/usr/bin/crond" "$R/sbin/crond"
  for kind in files created dirs moves mounts units packages users owners; do
    note_exists "$R/var/lib/gotune/undo/$kind"/*
    case $kind in created|moves|packages|owners) read_values "$R/var/lib/gotune/undo/$kind"/*;; esac
  done; }

# --- WSL2: the distro's settings and the Windows host under it -----------------

# Whether this live host is a WSL distro: its kernel says so, or its interop entry.
is_wsl() {
  value=; [ -f /proc/sys/kernel/osrelease ] && IFS= read -r value < /proc/sys/kernel/osrelease
  case $value in *[Mm]icrosoft*) return 0;; esac
  [ -e /proc/sys/fs/binfmt_misc/WSLInterop ] || [ -e /proc/sys/fs/binfmt_misc/WSLInterop-late ]; }

# Set $value to the Windows program $1: on PATH, else in its folder $2 on a drive WSL
# mounted (with appendWindowsPath=false Windows' folders are not on PATH).
windows_program() { value=$(command -v "$1" 2>/dev/null) && return 0
  for value in /mnt/*/"$2/$1"; do [ -x "$value" ] && return 0; done
  value=; return 1; }

# The X record "wsl profile": where the Windows user's profile is ("path=" and
# "source=", or "error=" saying why it is unknown); sets $profile.
collect_wsl_profile() { profile=; emit_header X "wsl profile"
  if [ -n "$WSL_PROFILE" ]; then
    profile=$WSL_PROFILE; printf 'source=setting\npath=%s\n\n@@end 0\n' "$profile"; return 0
  fi
  if ! windows_program cmd.exe Windows/System32; then
    printf 'error=cmd.exe not found (interop off or no Windows drive mounted)\n\n@@end 0\n'
    return 0
  fi
  # %USERPROFILE% is for cmd to expand; nothing here is a shell word of ours.
  out=$(cd / && with_timeout "$WINDOWS_TIMEOUT" "$value" /d /c echo '%USERPROFILE%' \
    </dev/null 2>/dev/null; printf ' %d' "$?")
  status=${out##* }; out=$(printf '%s' "${out% *}" | tr -d '\r\n')
  case $out in
    ?:\\*) profile=$(with_timeout "$STATVFS_TIMEOUT" wslpath -u "$out" </dev/null 2>/dev/null);;
  esac
  if [ -n "$profile" ]; then printf 'source=interop\npath=%s\n\n@@end 0\n' "$profile"
  else printf 'error=cmd.exe /c echo %%USERPROFILE%% gave %s (status %d)\n\n@@end 0\n' \
    "${out:-nothing}" "$status"; fi; }

# The X record "wsl windows": the Windows host's RAM and logical processors, asked
# through interop (PowerShell, CIM).
collect_wsl_windows() {
  windows_program powershell.exe Windows/System32/WindowsPowerShell/v1.0 || {
    emit_header X "wsl windows"; printf 'error=powershell.exe not found\n\n@@end 0\n'; return 0; }
  # PowerShell's own variables; no quotes, which interop would have to escape.
  # shellcheck disable=SC2016
  run_command "wsl windows" with_timeout "$WINDOWS_TIMEOUT" "$value" -NoLogo -NoProfile \
    -NonInteractive -Command '$c = Get-CimInstance -ClassName Win32_ComputerSystem; Write-Output'\
' memory=$($c.TotalPhysicalMemory) cpus=$($c.NumberOfLogicalProcessors)'; }

# Times lookups of a name no directory holds: $1 rounds, each timing $2 lookups with
# PATH=$3 ("with": it holds the Windows entries) and with PATH=$4 ("without"), in
# turns that swap order every round, as verify's A/B runs do. Prints "with NS" lines.
# shellcheck disable=SC2016 # run by sh -c with its own arguments
WSL_LOOKUP_SCRIPT='d=$(command -v date) || exit 1; rounds=$1; n=$2; with=$3; without=$4
one() { PATH=$2; s=$("$d" +%s%N); i=0
  while [ $i -lt "$n" ]; do command -v gotune-no-such-command >/dev/null; i=$((i+1)); done
  e=$("$d" +%s%N); echo "$1 $((e - s))"; }
r=0; while [ $r -lt "$rounds" ]; do
  if [ $((r % 2)) = 0 ]; then one with "$with"; one without "$without"
  else one without "$without"; one with "$with"; fi; r=$((r+1)); done'

# The X records "wsl path" ($PATH here) and, when it holds entries on Windows'
# drives, "wsl path lookups": what those entries cost every lookup that misses.
collect_wsl_path() { emit_header X "wsl path"; printf '%s\n\n@@end 0\n' "$PATH"
  linux=; windows=; saved_ifs=$IFS; IFS=:; set -f
  for entry in $PATH; do
    case $entry in /mnt/[a-z]|/mnt/[a-z]/*) windows=1;; *) linux=$linux${linux:+:}$entry;; esac
  done
  set +f; IFS=$saved_ifs
  [ -n "$windows" ] || return 0
  case $(date +%N 2>/dev/null) in ''|*[!0-9]*) return 0;; esac  # no nanoseconds: no timing
  # Already off in wsl.conf: the entries go at WSL's next start, nothing to decide.
  grep -qiE '^[[:space:]]*appendWindowsPath[[:space:]]*=[[:space:]]*"?(false|0)' \
    /etc/wsl.conf 2>/dev/null && return 0
  run_command "wsl path lookups" with_timeout "$TOOL_TIMEOUT" sh -c "$WSL_LOOKUP_SCRIPT" sh \
    "$WSL_LOOKUP_ROUNDS" "$WSL_LOOKUPS" "$PATH" "$linux"; }

# Times $2 lookups of a missing name below directory $1, in one sh; prints nanoseconds.
# shellcheck disable=SC2016 # run by sh -c with its own arguments
WSL_STAT_SCRIPT='d=$(command -v date) || exit 1; s=$("$d" +%s%N); i=0
while [ $i -lt "$2" ]; do [ -e "$1/.gotune-no-such-file" ]; i=$((i+1)); done
e=$("$d" +%s%N); echo $((e - s))'

# The X record "wsl drive cost": per Windows drive (9p under /mnt), what one lookup
# costs there and on / ("MOUNT NS_THERE NS_ROOT LOOKUPS" lines).
collect_wsl_drive_cost() { case $(date +%N 2>/dev/null) in ''|*[!0-9]*) return 0;; esac
  drives=
  while IFS=' ' read -r _id _parent _devno _root mountpoint rest; do
    fstype=${rest#* - }; fstype=${fstype%% *}
    case $fstype:$mountpoint in 9p:/mnt/?|drvfs:/mnt/?|fuse.9p:/mnt/?|virtiofs:/mnt/?)
      drives="$drives $mountpoint";;
    esac
  done < /proc/self/mountinfo
  [ -n "$drives" ] || return 0
  emit_header X "wsl drive cost"
  for drive in $drives; do
    there=$(with_timeout "$STATVFS_TIMEOUT" sh -c "$WSL_STAT_SCRIPT" sh "$drive" \
      "$WSL_STATS" </dev/null 2>/dev/null) || continue
    root=$(sh -c "$WSL_STAT_SCRIPT" sh / "$WSL_STATS" </dev/null 2>/dev/null) || continue
    printf '%s %s %s %s\n' "$drive" "$there" "$root" "$WSL_STATS"
  done
  printf '\n@@end 0\n'; }

# The X record "wsl projects USER": Go modules under /mnt/X that user $1 worked in,
# seen in their shell history or in VS Code's WSL workspaces ("SOURCE<TAB>DIR" lines).
collect_wsl_projects() { dev_user=$1
  home=$(with_timeout "$STATVFS_TIMEOUT" getent passwd -- "$dev_user" </dev/null 2>/dev/null |
    cut -d: -f6)
  [ -n "$home" ] || return 0
  tab=$(printf '\t')
  candidates=$({
    for f in "$home/.bash_history" "$home/.zsh_history"; do
      # A path as a shell line holds it: in double or single quotes, or with \ escapes.
      [ -f "$f" ] && tail -n "$WSL_HISTORY_LINES" -- "$f" | grep -oE \
        '"/mnt/[a-z]/[^"]*"|'"'/mnt/[a-z]/[^']*'"'|/mnt/[a-z]/([^][:space:]\"'"'"';|&<>()$`*?[]|\\.)*' |
        sed -e "s/^[\"']//" -e "s/[\"']\$//" -e 's/\\\(.\)/\1/g' -e "s/^/history$tab/"
    done
    for f in "$home"/.vscode-server/data/User/workspaceStorage/*/workspace.json; do
      [ -f "$f" ] && grep -o '/mnt/[a-z]/[^"]*' -- "$f" | sed -e 's/%20/ /g' \
        -e "s/^/VS Code$tab/"
    done; } 2>/dev/null | sort -u | head -n "$WSL_CANDIDATES")
  emit_header X "wsl projects $dev_user"
  printf '%s\n' "$candidates" | while IFS="$tab" read -r source dir; do
    dir=${dir%/}
    while case $dir in /mnt/[a-z]/*) true;; *) false;; esac; do
      [ -f "$dir/go.mod" ] && { printf '%s\t%s\n' "$source" "$dir"; break; }
      dir=${dir%/*}
    done
  done | sort -u
  printf '\n@@end 0\n'; }

# Live WSL host: wsl.conf and its owner, the Windows profile and its .wslconfig, the
# Windows host's size, inotify's limit, the Windows PATH's cost, projects on /mnt, and
# what gotune recorded or left pending.
collect_wsl() {
  read_whole /etc/wsl.conf /var/lib/gotune/wsl.json
  [ -e /etc/wsl.conf ] && run_command "wsl.conf owner" stat -c %u /etc/wsl.conf
  note_exists /run/gotune/wsl-restart-needed
  read_values /proc/sys/fs/inotify/max_user_watches
  collect_wsl_profile
  [ -n "$profile" ] && { note_exists "$profile"; read_whole "$profile/.wslconfig"; }
  collect_wsl_windows
  collect_wsl_path
  collect_wsl_drive_cost
  # shellcheck disable=SC2086 # the names split on spaces: checked in Python, no globs
  for dev_user in $USERS; do collect_wsl_projects "$dev_user"; done; }

# --- The run: the banner, every topic, then what only a live host can tell -----

emit_banner
collect_system
collect_cpus
collect_numa
collect_dimms
with_block_devices collect_block_devices
with_block_devices collect_links
collect_nics
collect_platform
collect_cgroup_limits
collect_gotune_state
if [ -z "$R" ]; then
  collect_tools
  collect_mount_space
  collect_users
  is_wsl && collect_wsl
fi
