# Shared settings and helpers of the test nodes and the test hypervisor (sourced, not run).
# Every setting can be overridden from the environment.
TB_PREFIX=${TB_PREFIX:-kos}                       # names: $TB_PREFIX-deployer, -router, -ext, -n<id8> (<= 6 chars)
TB_CACHE=${TB_CACHE:-/var/tmp/kos-testbed-cache}  # node base rootfs + offline apt repo (kept between runs)
TB_RUN=${TB_RUN:-/var/tmp/kos-testbed-run/$TB_PREFIX}  # per-node overlay upper dirs, pids, logs (removed on stop)
TB_REPO_PORT=${TB_REPO_PORT:-8080}                # offline apt repo, served on the tenant gateway address
export TB_PREFIX TB_CACHE TB_RUN TB_REPO_PORT
TB_NODES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

ns()  { echo "$TB_PREFIX-$1"; }                   # ns deployer / ns router / ns ext / ns n1a2b3c4d
log() { echo "[testbed $(date +%T.%3N)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# A node's port on the router is the interface ${TB_PREFIX}n<id8>, and Linux allows 15 characters:
# a longer prefix made every node's create fail ("Attribute failed policy validation") and the
# tests wait for nodes that never came.
[[ $TB_PREFIX =~ ^[a-z][a-z0-9]{0,5}$ ]] || die "TB_PREFIX=$TB_PREFIX: use 1 to 6 lower-case letters or digits," \
  "starting with a letter (a node's interface is \${TB_PREFIX}n<8 hex digits>, at most 15 characters)"

# Move the calling process into <its own cgroup>/<leaf> in every cgroup hierarchy (v1, hybrid or v2)
# and record the created directories in $2, so that the node's cgroups can be removed from any process.
# Needs the host's cgroup mounts: run under `nsenter --net`, not `ip netns exec` (that remounts /sys).
cg_enter() {
  local leaf=$1 rec=$2 id ctrls path mnt d cg
  cg=$(cat /proc/self/cgroup)   # read once: the file changes under us as we move
  while IFS=: read -r id ctrls path; do
    if [[ -z $ctrls ]]; then mnt=$(awk '$3=="cgroup2"{print $2; exit}' /proc/mounts)
    else mnt=$(awk -v c="$ctrls" '$3=="cgroup" && index(","$4",", ","c",")>0 {print $2; exit}' /proc/mounts); fi
    [[ -n $mnt ]] || continue
    d=$mnt${path%/}/$leaf
    mkdir -p "$d" 2>/dev/null || continue
    echo "$d" >>"$rec"
    if [[ -f $d/cpuset.cpus && -z $(cat "$d/cpuset.cpus") ]]; then
      cat "$(dirname "$d")/cpuset.cpus" >"$d/cpuset.cpus"; cat "$(dirname "$d")/cpuset.mems" >"$d/cpuset.mems"; fi
    echo "$BASHPID" >"$d/cgroup.procs" 2>/dev/null || log "cg_enter: could not join $d"
  done <<<"$cg"
}
# A cgroup with a process in it cannot be removed, and a node's last processes can linger for a
# while after it powered off (zombies wait for the host's PID 1 to reap them, about 2 s: gotcha 5):
# one try left empty cgroup folders behind now and then (`LEAK: cgroup ...` at teardown). Try again
# until every folder is gone, for at most 15 s.
cg_remove() {  # $1 = record file written by cg_enter
  local d left i; [[ -f $1 ]] || return 0
  for i in $(seq 1 75); do
    left=0
    while read -r d; do
      [[ -d $d ]] || continue
      find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
      [[ -d $d ]] && left=1
    done <"$1"
    (( left )) || return 0
    sleep 0.2
  done
  log "cg_remove: cgroups still in use after 15 s: $(while read -r d; do [[ -d $d ]] && echo -n "$d ($(cat "$d/cgroup.procs" 2>/dev/null | wc -l) processes) "; done <"$1")"
  return 0
}
cg_mem() {     # memory charged to a node's cgroup tree: "<usage MiB> <rss MiB>"
  local d; d=$(grep -m1 '/memory/' "$1" 2>/dev/null) || true
  if [[ -n $d && -f $d/memory.usage_in_bytes ]]; then
    awk -v u="$(cat "$d/memory.usage_in_bytes")" '$1=="total_rss"{r=$2} END{printf "%d %d\n", u/1048576, r/1048576}' "$d/memory.stat"
  elif d=$(grep -m1 -v '/memory/' "$1" 2>/dev/null) && [[ -f $d/memory.current ]]; then
    awk -v u="$(cat "$d/memory.current")" '$1=="anon"{r=$2} END{printf "%d %d\n", u/1048576, r/1048576}' "$d/memory.stat"
  else echo "? ?"; fi
}
