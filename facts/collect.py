"""The one collector command, and the splitter that turns its output back into files.

gotune pays one round trip per host: a single POSIX ``sh`` command reads every
raw input (sysfs and procfs files, symlink targets, a few tool outputs such as
``go env -json``) below a root prefix and prints them as tagged records. The
topic modules (``facts.cpu``, ``facts.numa`` ...) parse those records with
pure functions, so a recorded tree (``--sysroot DIR``) reads exactly like a
live host.

Framing, from the inside out:

* every record starts with a header line ``@@TAG LEN:NAME`` where NAME is a
  path below the root (or a command name) and LEN its length in bytes, so a
  name may hold spaces, quotes or newlines;
* content lines follow, each prefixed ``|`` so no content line can look like
  a header; multi-line content ends with a trailer ``|@@end RC`` holding the
  exit status, printed after one extra newline so a missing final newline
  survives;
* the whole stream goes through one ``sed`` in the C locale, which does both:
  the shell prints headers and banners behind a random marker made per
  command (``MARKER_BYTES``), which sed strips, and every other line (content,
  which no file can make start with a marker it cannot know) gets its ``|``;
  then ``l`` prints every byte that is not printable ASCII (NUL, UTF-8,
  control bytes) as an octal escape and ends each line with ``$``. The output
  is plain ASCII lines, which is what pyinfra's connectors hand to
  ``process()``. So no process is started per file just to frame it; link
  targets and statvfs figures are read in one go, and when such a batch
  cannot be trusted (a failure, a line too many) each item is read alone.

The command interpolates nothing but the root prefix and the user names, all
``shlex.quote``d (names checked against ``USER_NAME`` first); every file name it
meets is only ever a quoted argument.
"""

from __future__ import annotations

import re
import secrets
import shlex
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Seconds allowed for anything that can block on the target (go env, dmidecode,
# statvfs of one mount): long enough for a cold `go env` on a slow disk, short
# enough that a hung NFS server cannot stall a fleet run.
TOOL_TIMEOUT_S = 20
STATVFS_TIMEOUT_S = 5
# Random bytes of the per-command header marker (see ``c`` in SCRIPT): 128 bits,
# so no file read on the target can carry it by chance or by guess.
MARKER_BYTES = 16

# A user name gotune will pass to su: POSIX portable names (plus a trailing $
# for Samba machine accounts). Anything else is refused before it reaches a shell.
USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")

# The shell program. $R is the root prefix ("" for a live host), $USERS the developer users.
SCRIPT = r"""
LC_ALL=C; export LC_ALL
NL='
'
AWK=; command -v awk >/dev/null 2>&1 && AWK=1
# Every line the final sed sees is content, which it prefixes with "|", unless
# it starts with this command's random marker __M__, which it strips: headers
# and banners. No file can know the marker, so no content can pass as a header.
mk() { s=$1  # each line of $1 (a name may hold newlines) behind the marker
  while :; do case $s in
    *"$NL"*) printf '__M__%s\n' "${s%%"$NL"*}"; s=${s#*"$NL"};;
    *) printf '__M__%s\n' "$s"; return 0;;
  esac; done; }
hdr() { case $2 in
  *"$NL"*) mk "@@$1 ${#2}:$2";;
  *) printf '__M__@@%s %d:%s\n' "$1" "${#2}" "$2";;
esac; }
vp() { r=${1#"$R"}; case $r in  # one printf, one write, in the common case
  *"$NL"*) hdr V "$r"; printf '%s\n' "$x";;
  *) printf '__M__@@V %d:%s\n%s\n' "${#r}" "$r" "$x";;
esac; }
v() { for f in "$@"; do shift
  [ -f "$f" ] || continue  # a regular file: a FIFO or device in a tree would block
  x=; IFS= read -r x < "$f"
  if [ -n "$x" ]; then vp "$f"; else set -- "$@" "$f"; fi
done
[ $# -gt 0 ] && vr "$@"; return 0; }
# As v, but what read found empty waits in $D (one path a line) for vf, so
# that one awk reads it for all CPUs.
vd() { for f in "$@"; do
  [ -f "$f" ] || continue
  x=; IFS= read -r x < "$f"
  if [ -n "$x" ]; then vp "$f"
  else case $f in *"$NL"*) vr "$f";; *) D=$D$f$NL;; esac; fi
done; }
vf() { [ -n "$D" ] || return 0
  set -f; ifs=$IFS; IFS=$NL; set -- $D; IFS=$ifs; set +f; D=; vr "$@"; }
vc() { x=$(cat -- "$1"; echo .); x=${x%%"$NL"*}; x=${x%.}; vp "$1"; }
# dash reads byte by byte, which sysfs binary attributes (cpulist) answer with
# nothing: what read found empty is read again, the first lines of all by one
# awk. mawk stops at a file it cannot read: that one goes to cat alone, and
# when awk read nothing at all, so do the rest.
vr() { [ -n "$AWK" ] || { for f in "$@"; do vc "$f"; done; return 0; }
  while [ $# -gt 1 ]; do
    o=$(awk 'BEGIN { for (i = 1; i < ARGC; i++) {
      l = ""; getline l < ARGV[i]; print l; close(ARGV[i]) } }' "$@" </dev/null 2>/dev/null
      printf '%d.' "$?")
    k=0
    while case $o in *"$NL"*) true;; *) false;; esac; do
      [ $# -gt 0 ] || break
      x=${o%%"$NL"*}; o=${o#*"$NL"}; vp "$1"; shift; k=1
    done
    [ "$o" = 0. ] && return 0
    [ $# -gt 0 ] && { vc "$1"; shift; }
    [ $k = 0 ] && break
  done
  for f in "$@"; do vc "$f"; done; }
lc() { n=0; t=$1  # n: how many newlines $1 holds
  while case $t in *"$NL"*) true;; *) false;; esac; do t=${t#*"$NL"}; n=$((n+1)); done; }
c() { for f in "$@"; do
  [ -f "$f" ] || continue
  r=${f#"$R"}; hdr C "$r"
  cat -- "$f"; printf '\n@@end %d\n' "$?"
done; }
l1() { r=${1#"$R"}; hdr L "$r"; readlink -- "$1"; printf '\n@@end %d\n' "$?"; }
# Symlink targets, all by one readlink; trusted only when every link answered
# with exactly one line, else each link alone.
l() { for f in "$@"; do shift; [ -L "$f" ] && set -- "$@" "$f"; done
  [ $# -gt 0 ] || return 0
  [ $# = 1 ] && { l1 "$1"; return 0; }
  o=$(readlink -- "$@" </dev/null 2>/dev/null; printf '%d.' "$?")
  lc "$o"
  if [ "${o##*"$NL"}" = 0. ] && [ $n = $# ]; then
    for f in "$@"; do r=${f#"$R"}; hdr L "$r"
      printf '%s\n\n@@end 0\n' "${o%%"$NL"*}"; o=${o#*"$NL"}; done
  else for f in "$@"; do l1 "$f"; done; fi; }
vb() { for f in "$@"; do shift
    [ -f "$f" ] && { set -- "$@" "$f"; r=${f#"$R"}; hdr N "$r"; }
  done
  [ $# -gt 0 ] || return 0
  hdr B ""; cat -- "$@"; printf '\n@@end %d\n' "$?"; }
e() { for f in "$@"; do
  if [ -e "$f" ] || [ -L "$f" ]; then r=${f#"$R"}; hdr E "$r"; fi
done; }
x() { n=$1; shift; hdr X "$n"; "$@" </dev/null 2>/dev/null; printf '\n@@end %d\n' "$?"; }
tm() { if command -v timeout >/dev/null 2>&1; then timeout "$@"; else shift; "$@"; fi; }
ST='%S %b %f %a'
# statvfs of every mount by one stat; if it fails or times out (one hung
# mount), each mount alone, so the others are still seen.
sv() { [ $# -gt 0 ] || return 0
  o=$(tm __S__ stat -f -c "$ST" -- "$@" </dev/null 2>/dev/null; printf '%d.' "$?")
  lc "$o"
  if [ $# -gt 1 ] && [ "${o##*"$NL"}" = 0. ] && [ $n = $# ]; then
    for f in "$@"; do hdr X "statvfs $f"
      printf '%s\n\n@@end 0\n' "${o%%"$NL"*}"; o=${o#*"$NL"}; done
  else for f in "$@"; do x "statvfs $f" tm __S__ stat -f -c "$ST" -- "$f"; done; fi; }
walk() { wb=$1; wp=$2; shift 2  # a cgroup and each parent: the tightest limit wins
  case $wp in *..*) return;; esac
  while :; do
    for wn in "$@"; do v "$wb$wp/$wn"; done
    [ -z "$wp" ] && break; [ "$wp" = / ] && break
    wp=${wp%/*}
  done; }
printf '__M__@@gotune 1\n'
[ -z "$R" ] && printf '__M__@@live 1\n'
c "$R/proc/cpuinfo" "$R/proc/meminfo" "$R/proc/self/status" "$R/proc/self/mountinfo" \
  "$R/proc/mounts" "$R/proc/self/cgroup" "$R/proc/self/cpuset" "$R/etc/os-release" \
  "$R/usr/lib/os-release" "$R/run/udev/data/+dmi:id" "$R/proc/1/environ" "$R/proc/version"
v "$R/sys/devices/system/cpu/online" "$R/sys/devices/system/cpu/present" \
  "$R/sys/devices/system/cpu/possible" "$R/sys/devices/cpu_core/cpus" \
  "$R/sys/devices/cpu_atom/cpus" "$R/proc/sys/kernel/osrelease" \
  "$R/proc/sys/kernel/hostname" "$R/etc/hostname" "$R/run/systemd/container"
D=
for d in "$R"/sys/devices/system/cpu/cpu[0-9]*; do
  e "$d"
  vd "$d/online" "$d/topology/physical_package_id" "$d/topology/core_id" "$d/topology/die_id" \
    "$d/cpufreq/cpuinfo_max_freq" "$d/cpufreq/base_frequency" "$d/cpu_capacity"
done
vf
# Which threads share a core: binary attributes, so one cat for all CPUs.
for n in thread_siblings_list thread_siblings core_cpus_list core_cpus; do
  set -- "$R"/sys/devices/system/cpu/cpu[0-9]*/topology/$n
  [ -f "$1" ] && { vb "$@"; break; }
done
for n in package_cpus_list core_siblings_list package_cpus core_siblings; do
  set -- "$R"/sys/devices/system/cpu/cpu[0-9]*/topology/$n
  [ -f "$1" ] && { vb "$@"; break; }
done
v "$R/sys/devices/system/node/online" "$R/sys/devices/system/node/possible" \
  "$R/sys/devices/system/node/has_cpu" "$R/sys/devices/system/node/has_memory"
set --
for d in "$R"/sys/devices/system/node/node[0-9]*; do
  e "$d"; set -- "$@" "$d/cpulist" "$d/cpumap" "$d/distance"
done
v "$@"
set --
for d in "$R"/sys/devices/system/node/node[0-9]*; do set -- "$@" "$d/meminfo"; done
c "$@"
for d in "$R"/sys/devices/virtual/memory_tiering/memory_tier[0-9]*; do
  e "$d"; v "$d/nodelist" "$d/nodes"
done
for d in "$R"/sys/devices/system/edac/mc/mc[0-9]*/dimm[0-9]* \
         "$R"/sys/devices/system/edac/mc/mc[0-9]*/rank[0-9]*; do
  v "$d/dimm_mem_type" "$d/size" "$d/dimm_label" "$d/dimm_location" "$d/dimm_dev_type"
done
set -- "$R"/sys/class/block/* "$R"/sys/class/block/.[!.]* "$R"/sys/class/block/..?*
{ [ -e "$1" ] || [ -L "$1" ]; } || set -- "$R"/sys/block/* "$R"/sys/block/.[!.]* "$R"/sys/block/..?*
n=$#
for d in "$@"; do
  [ -e "$d" ] || [ -L "$d" ] || continue
  x=; v "$d/dev"; mm=$x; e "$d/partition"
  [ -e "$d/partition" ] && continue
  v "$d/size" "$d/queue/rotational" "$d/removable" "$d/device/model" "$d/device/vendor" \
    "$d/device/type" "$d/device/numa_node" "$d/device/device/numa_node" "$d/dm/name"
  case $mm in *[!0-9:]*|'') ;; *) set -- "$@" "$R/run/udev/data/b$mm";; esac
  e "$d"/slaves/*
done
shift $n; c "$@"  # the udev records of the disks
# The links of the block devices (and their drivers), then of the NICs: one list.
set -- "$R"/sys/class/block/* "$R"/sys/class/block/.[!.]* "$R"/sys/class/block/..?*
{ [ -e "$1" ] || [ -L "$1" ]; } || set -- "$R"/sys/block/* "$R"/sys/block/.[!.]* "$R"/sys/block/..?*
n=$#
for d in "$@"; do
  [ -e "$d" ] || [ -L "$d" ] || continue
  set -- "$@" "$d"; [ -e "$d/partition" ] || set -- "$@" "$d/device/driver"
done
shift $n
for d in "$R"/sys/class/net/* "$R"/sys/class/net/.[!.]* "$R"/sys/class/net/..?*; do
  [ -e "$d" ] || [ -L "$d" ] || continue
  set -- "$@" "$d" "$d/device/driver"
done
l "$@"
set --
for d in "$R"/sys/class/net/* "$R"/sys/class/net/.[!.]* "$R"/sys/class/net/..?*; do
  [ -e "$d" ] || [ -L "$d" ] || continue
  set -- "$@" "$d/operstate" "$d/speed" "$d/carrier" "$d/device/numa_node" "$d/type"
done
v "$@"
v "$R/sys/class/dmi/id/sys_vendor" "$R/sys/class/dmi/id/product_name" \
  "$R/sys/class/dmi/id/board_vendor" "$R/sys/class/dmi/id/bios_vendor" \
  "$R/sys/class/dmi/id/product_version" "$R/sys/hypervisor/type"
e "$R/proc/sys/fs/binfmt_misc/WSLInterop" "$R/proc/sys/fs/binfmt_misc/WSLInterop-late" \
  "$R/run/WSL" "$R/.dockerenv" "$R/run/.containerenv" "$R/run/systemd/system" \
  "$R/proc/vz" "$R/proc/bc" "$R/proc/xen"
if [ -f "$R/proc/self/cgroup" ]; then
  while IFS= read -r line; do
    rest=${line#*:}; ctl=${rest%%:*}; p=${rest#*:}
    case ,$ctl, in
      ,,) walk "$R/sys/fs/cgroup" "$p" cpu.max memory.max;;
      *,memory,*) walk "$R/sys/fs/cgroup/memory" "$p" memory.limit_in_bytes;;
    esac
    case ,$ctl, in *,cpu,*)
      walk "$R/sys/fs/cgroup/cpu,cpuacct" "$p" cpu.cfs_quota_us cpu.cfs_period_us
      walk "$R/sys/fs/cgroup/cpu" "$p" cpu.cfs_quota_us cpu.cfs_period_us;;
    esac
  done < "$R/proc/self/cgroup"
fi
# gotune's own state: the plan apply carried out, NUMA figures, installed services, undo records.
c "$R/var/lib/gotune/plan.json" "$R/var/lib/gotune/numa.json" \
  "$R/etc/systemd/system/gotune-mirror.service" "$R/opt/gotune/gotune-mirror-supervise"
e "$R/etc/systemd/system/gotune-wear.timer" "$R/etc/cron.d/gotune-wear" \
  "$R/usr/sbin/cron" "$R/usr/sbin/crond" "$R/usr/bin/crond" "$R/sbin/crond"
for k in files created moves mounts units packages; do
  e "$R/var/lib/gotune/undo/$k"/*
  case $k in created|moves|packages) v "$R/var/lib/gotune/undo/$k"/*;; esac
done
if [ -z "$R" ]; then
  x uname uname -m
  o=$(id -u </dev/null 2>/dev/null; printf '\n@@end %d' "$?"); uid=${o%%"$NL"*}
  hdr X id; printf '%s\n' "$o"
  if [ "$uid" = 0 ] && command -v dmidecode >/dev/null 2>&1; then
    x dmidecode tm __T__ dmidecode -t 17
  fi
  command -v systemd-detect-virt >/dev/null 2>&1 && x detect-virt tm __T__ systemd-detect-virt
  if [ -r /proc/self/mountinfo ]; then
    set --
    while IFS=' ' read -r _i _p _m _r mp rest; do
      fs=${rest#* - }; fs=${fs%% *}
      case $fs in
        nfs*|cifs|smb*|9p|drvfs|virtiofs|sshfs|afs|ceph|glusterfs) continue;;
        lustre|beegfs|gpfs|fuse|fuse.*|autofs|proc|sysfs|cgroup|cgroup2) continue;;
        devpts|devtmpfs|mqueue|debugfs|tracefs|securityfs|pstore|bpf|configfs) continue;;
        fusectl|binfmt_misc|nsfs|efivarfs|rpc_pipefs|hugetlbfs|squashfs|selinuxfs) continue;;
      esac
      case $mp in
        *\\*)  # octal escapes: decoded for stat, the record keeps the raw name
          p=$(printf '%s\n' "$mp" | sed 's/\\\([0-7][0-7][0-7]\)/\\0\1/g')
          p=$(printf '%b.' "$p"); p=${p%.}
          x "statvfs $mp" tm __S__ stat -f -c "$ST" -- "$p";;
        *) set -- "$@" "$mp";;
      esac
    done < /proc/self/mountinfo
    sv "$@"
  fi
  me=$(tm __S__ id -un </dev/null 2>/dev/null)
  command -v getent >/dev/null 2>&1 || { [ -n "$USERS" ] && c /etc/passwd; }
  GS='cd / || exit 1
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
x="$x(GOCACHE|GOMODCACHE|GOPROXY|GOTMPDIR|GOENV)([=[:space:]])"
for s in .profile .bash_profile .bash_login .bashrc .zshenv .zprofile .zshrc \
    .config/fish/config.fish /etc/environment; do
  case $s in /*) p=$s;; *) p=$HOME/$s;; esac
  [ -f "$p" ] && grep -nE "$x" "$p" | while IFS= read -r l; do printf "%s:%s\\n" "$p" "$l"; done
done
true'
  # User names are checked in Python ([A-Za-z_][A-Za-z0-9_.-]*): no globs, no spaces.
  for u in $USERS; do
    command -v getent >/dev/null 2>&1 && x "passwd $u" tm __S__ getent passwd -- "$u"
    x "group $u" tm __S__ id -gn -- "$u"
    if [ "$me" = "$u" ]; then
      x "goenv $u" tm __T__ sh -lc "$GS"
    elif [ "$uid" = 0 ]; then
      if command -v runuser >/dev/null 2>&1; then
        x "goenv $u" tm __T__ runuser -l "$u" -s /bin/sh -c "$GS"
      else
        x "goenv $u" tm __T__ su -l -s /bin/sh -c "$GS" "$u"
      fi
    else
      printf '__M__@@skip goenv %s not-root\n' "$u"
    fi
  done
fi
"""


def build_command(sysroot: str = "/", users: Sequence[str] = ()) -> str:
    """The one shell command that collects every raw input of a host.

    + sysroot: root prefix to read below ("/" for the live host, a recorded tree otherwise)
    + users: the developer users whose ``go env``, GOENV file and home matter
    """
    if isinstance(users, str):
        raise TypeError("users must be a list of user names, not a string")
    for user in users:
        if not USER_NAME.fullmatch(user):
            raise ValueError(f"not a valid user name: {user!r}")
    root = sysroot.rstrip("/")
    if sysroot and not sysroot.startswith("/"):
        raise ValueError(f"sysroot must be an absolute path: {sysroot!r}")
    marker = "@" + secrets.token_hex(MARKER_BYTES)
    body = (
        SCRIPT.replace("__T__", str(TOOL_TIMEOUT_S))
        .replace("__S__", str(STATVFS_TIMEOUT_S))
        .replace("__M__", marker)
    )
    prelude = f"R={shlex.quote(root)}; USERS={shlex.quote(' '.join(users))}"
    # sed is the framer and encoder: content lines get "|", marked lines lose
    # the marker, every line is escaped by `l`. Without sed nothing is printed
    # but one marker line.
    encode = f"-e '/^{marker}/!s/^/|/' -e 's/^{marker}//' -e l"
    return (
        "if command -v sed >/dev/null 2>&1; then "
        f"( {prelude}\n{body}\n) 2>/dev/null | LC_ALL=C sed -n {encode}; "
        "else echo '@@gotune:no-sed'; fi"
    )


_ESCAPES = {
    "\\": 0x5C,
    "a": 0x07,
    "b": 0x08,
    "f": 0x0C,
    "n": 0x0A,
    "r": 0x0D,
    "t": 0x09,
    "v": 0x0B,
}


def decode_sed_l(lines: Iterable[str]) -> bytes:
    """Undo ``sed -n l``: octal and C escapes, ``$`` line ends, ``\\`` line folds.

    Lines that are not in that form (a truncated stream, noise) are skipped.
    """
    out = bytearray()
    for line in lines:
        line = line.rstrip("\r\n")
        i, n = 0, len(line)
        buf = bytearray()
        ended = folded = False
        while i < n:
            ch = line[i]
            if ch == "\\":
                if i + 1 >= n:
                    folded = True  # a lone backslash at the end: the line continues
                    break
                nxt = line[i + 1]
                if nxt in _ESCAPES:
                    buf.append(_ESCAPES[nxt])
                    i += 2
                    continue
                octal = line[i + 1 : i + 4]
                if len(octal) == 3 and all(c in "01234567" for c in octal):
                    buf.append(int(octal, 8) & 0xFF)
                    i += 4
                    continue
                buf.append(0x5C)
                i += 1
                continue
            if ch == "$" and i == n - 1:
                ended = True
                break
            buf += ch.encode("utf-8", "replace")
            i += 1
        if not (ended or folded):
            continue
        out += buf
        if ended:
            out += b"\n"
    return bytes(out)


@dataclass
class Dump:
    """What the collector saw, keyed by path below the root ("/proc/cpuinfo")."""

    values: dict[str, str] = field(default_factory=dict)  # first line of attribute files
    files: dict[str, bytes] = field(default_factory=dict)  # whole files
    links: dict[str, str] = field(default_factory=dict)  # symlink targets
    exists: set[str] = field(default_factory=set)
    commands: dict[str, tuple[bytes, int | None]] = field(default_factory=dict)  # output, status
    errors: dict[str, str] = field(default_factory=dict)  # path or command -> why unreadable
    skipped: list[str] = field(default_factory=list)
    batch: list[str] = field(default_factory=list)  # names announced for the next batch record
    live: bool = False
    complete: bool = False  # the stream started with the collector's banner

    def value(self, path: str) -> str | None:
        """First line of an attribute file, stripped; None when absent or empty."""
        text = self.values.get(path)
        if text is None:
            data = self.files.get(path)
            text = data.decode("utf-8", "replace").split("\n", 1)[0] if data is not None else None
        if text is None:
            return None
        text = text.strip()
        return text or None

    def text(self, path: str) -> str | None:
        data = self.files.get(path)
        return None if data is None else data.decode("utf-8", "replace")

    def children(self, prefix: str) -> list[str]:
        """Names directly below ``prefix`` that the collector saw, sorted."""
        prefix = prefix.rstrip("/") + "/"
        names: set[str] = set()
        for table in (self.values, self.files, self.links, self.exists):
            for key in table:
                if key.startswith(prefix):
                    names.add(key[len(prefix) :].split("/", 1)[0])
        return sorted(names)

    def output(self, name: str) -> str | None:
        """A command's stdout when it ran and exited 0, else None."""
        got = self.commands.get(name)
        if got is None or got[1] != 0:
            return None
        return got[0].decode("utf-8", "replace")


_HEADER = re.compile(rb"@@([A-Za-z]+) (\d+):")
_SLASHES = re.compile(r"/{2,}")


def _norm(path: str) -> str:
    path = _SLASHES.sub("/", path)
    return path if path.startswith("/") else "/" + path


def split_records(raw: bytes) -> Dump:
    """Split the decoded stream into a Dump; garbled records are dropped, never fatal."""
    dump = Dump()
    pos, n = 0, len(raw)
    tag: str | None = None
    name = ""
    body: list[bytes] = []

    def finish() -> None:
        if tag is None:
            return
        _store(dump, tag, name, body)

    while pos < n:
        if raw.startswith(b"@@", pos):
            finish()
            tag, body = None, []
            m = _HEADER.match(raw, pos)
            if m:
                size = int(m.group(2))
                start = m.end()
                end = start + size
                if end <= n and (end == n or raw[end : end + 1] == b"\n"):
                    tag = m.group(1).decode()
                    name = raw[start:end].decode("utf-8", "replace")
                    pos = end + 1
                    continue
            nl = raw.find(b"\n", pos)
            line = raw[pos : n if nl < 0 else nl]
            if line == b"@@gotune 1":
                dump.complete = True
            elif line == b"@@live 1":
                dump.live = True
            elif line.startswith(b"@@skip "):
                dump.skipped.append(line[7:].decode("utf-8", "replace"))
            pos = n if nl < 0 else nl + 1
            continue
        nl = raw.find(b"\n", pos)
        line = raw[pos : n if nl < 0 else nl]
        pos = n if nl < 0 else nl + 1
        if tag is not None and line.startswith(b"|"):
            body.append(line[1:])
    finish()
    return dump


_TRAILER = re.compile(rb"@@end (\d+)")


def _store(dump: Dump, tag: str, name: str, body: list[bytes]) -> None:
    if tag == "E":
        dump.exists.add(_norm(name))
        return
    if tag == "V":
        if body:
            dump.values[_norm(name)] = body[0].decode("utf-8", "replace")
        return
    if tag == "N":
        dump.batch.append(_norm(name))
        return
    if tag == "B":
        names, dump.batch = dump.batch, []
        trailer = _TRAILER.fullmatch(body[-1]) if body else None
        lines = body[:-1]
        if lines and lines[-1] == b"":
            lines = lines[:-1]  # the newline printed before the trailer
        # One line per file, in order; any other count means a file was not one
        # line (or unreadable), and then no line can be trusted to its name.
        if trailer is None or trailer.group(1) != b"0" or len(lines) != len(names):
            for key in names:
                dump.errors[key] = "batch read failed"
            return
        for key, line in zip(names, lines, strict=True):
            dump.values[key] = line.decode("utf-8", "replace")
        return
    if tag not in ("C", "L", "X"):
        return
    key = name if tag == "X" else _norm(name)
    trailer = _TRAILER.fullmatch(body[-1]) if body else None
    if trailer is None:
        dump.errors[key] = "output cut short"
        return
    status = int(trailer.group(1))
    content = b"\n".join(body[:-1])
    if tag == "X":
        dump.commands[key] = (content, status)
    elif status != 0:
        dump.errors[key] = f"unreadable (status {status})"
    elif tag == "C":
        dump.files[key] = content
    else:
        dump.links[key] = content.decode("utf-8", "replace").rstrip("\n")


def collect_local(
    sysroot: str = "/", users: Sequence[str] = (), timeout: float = 120
) -> list[str]:
    """Run the collector on this machine with /bin/sh; the output lines, as pyinfra would see them.

    + sysroot: root prefix (a recorded tree, or "/")
    + users: developer users for ``go env`` (none: skip)
    """
    out = subprocess.run(
        ["/bin/sh", "-c", build_command(sysroot, users)],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return out.stdout.decode("ascii", "replace").splitlines()
