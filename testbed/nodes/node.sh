#!/bin/bash
# node.sh -- one test node = a network namespace on the tenant bridge + systemd-nspawn --boot on an overlay
# of the base. The hypervisor calls it; it also works by hand (the sandbox must be up: sandbox.sh).
#
#   node.sh up ID IP/PLEN GW MAC HOSTNAME KEYFILE   create (or keep) and boot node ID (8 hex chars):
#                                                   eth0 = IP with MAC, default via GW; authorized_keys of
#                                                   root and debian = KEYFILE (may be empty: no login)
#   node.sh reboot ID      reboot (clean shutdown, boot again; disk kept)
#   node.sh off ID         power off (disk and network kept);   node.sh on ID   boot again
#   node.sh down ID        power off and remove everything of the node (netns, cgroups, disk)
#   node.sh ls             IDs of the nodes that exist;   node.sh running ID   exit 0 when booted
#   node.sh mem ID         "<charged MiB> <rss MiB>" of the node's memory cgroup
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cmd=${1:-}; id=${2:-}
[[ $cmd == ls ]] || [[ $id =~ ^[0-9a-f]{8}$ ]] || die "usage: node.sh up|reboot|off|on|down|running|mem ID ... (ID = 8 hex chars)"
d=$TB_RUN/nodes/$id; NS=$(ns "n$id"); R=$(ns router)
sup() { cat "$d/pid" 2>/dev/null || true; }   # empty when the supervisor left no pid file

power_on() {
  alive "$(sup)" && return 0
  # Default dispositions for the signals the supervisor traps: a signal ignored when a bash
  # script starts cannot be trapped, and a test bed started under `nohup` (or by a runner
  # that ignores SIGHUP) handed that to every node's supervisor: Nova reboots were ignored.
  setsid env --default-signal=HUP,TERM,INT "$TB_NODES_DIR/node-start.sh" "$id" </dev/null >>"$d/console.log" 2>&1 &
  echo $! >"$d/pid"
}
power_off() {    # clean poweroff through the supervisor; the node's PID 1 is killed if it hangs
  local p s c; p=$(sup); alive "$p" || return 0
  s=$(cat "$d/nspawn.pid" 2>/dev/null || true); c=$(pgrep -P "${s:-0}" | head -1 || true)
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 100); do alive "$p" || return 0; sleep 0.1; done
  log "node $id: no clean poweroff in 10 s, killing its PID 1 ($c)"
  [[ -n $c ]] && kill -KILL "$c" 2>/dev/null; sleep 0.3
  [[ -n $s ]] && kill -KILL "$s" 2>/dev/null; kill -KILL "$p" 2>/dev/null || true
}

case $cmd in
up)
  (( $# == 7 )) || die "usage: node.sh up ID IP/PLEN GW MAC HOSTNAME KEYFILE"
  ip=$3 gw=$4 mac=$5 host=$6 keys=$7
  if [[ -e /run/netns/$NS && -d $d/upper ]]; then power_on; exit 0; fi
  [[ -x $TB_CACHE/base/usr/sbin/sshd ]] || die "no node base in $TB_CACHE: run testbed/nodes/install.sh"
  [[ -e /run/netns/$R ]] || die "no router namespace $R: the sandbox is not up"
  rm -rf "$d"; mkdir -p "$d"
  # network: eth0 in the node's netns, its peer on the router's tenant bridge (a Neutron port's place)
  ip netns del "$NS" 2>/dev/null || true
  ip netns add "$NS"
  ip link add "${TB_PREFIX}n$id" type veth peer name eth0 netns "$NS"
  ip link set "${TB_PREFIX}n$id" netns "$R"
  ip -n "$R" link set "${TB_PREFIX}n$id" master tenant0 up
  ip -n "$NS" link set lo up
  ip -n "$NS" link set eth0 address "$mac"
  ip -n "$NS" addr add "$ip" dev eth0
  ip -n "$NS" link set eth0 up
  ip -n "$NS" route add default via "$gw"
  # disk: the node's own files in the overlay's upper dir
  u=$d/upper
  mkdir -p "$u/etc/ssh" "$u/etc/apt" "$u/usr/local/sbin" "$u/etc/systemd/system/sysinit.target.wants" \
           "$u/root/.ssh" "$u/home/debian/.ssh"
  echo "$host" >"$d/hostname"; echo "$host" >"$u/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 %s\n::1 localhost ip6-localhost ip6-loopback\n' "$host" >"$u/etc/hosts"
  echo "deb [trusted=yes] http://$gw:$TB_REPO_PORT ./" >"$u/etc/apt/sources.list"   # the offline repo
  echo "nameserver $gw" >"$u/etc/resolv.conf"   # nothing answers there: lookups fail fast, nothing leaves
  ssh-keygen -q -t ed25519 -N '' -C "$host" -f "$u/etc/ssh/ssh_host_ed25519_key"
  ln -sf /dev/null "$u/etc/systemd/system/e2scrub_reap.service"
  # nspawn mounts the cgroup v1 controllers read-only; runc/containerd need them writable
  install -m 755 "$TB_NODES_DIR/node-cgroup-rw.sh" "$u/usr/local/sbin/tb-cgroup-rw"
  cat >"$u/etc/systemd/system/tb-cgroup-rw.service" <<'EOT'
[Unit]
Description=testbed: writable cgroup v1 controllers inside the node
DefaultDependencies=no
Before=sysinit.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/tb-cgroup-rw
EOT
  ln -sf ../tb-cgroup-rw.service "$u/etc/systemd/system/sysinit.target.wants/tb-cgroup-rw.service"
  # `/` rshared, as a VM's systemd makes it (it skips that in a container) and kind does: mount
  # propagation (HostToContainer/Bidirectional, CSI). nspawn 252 already marks the tree shared; this
  # keeps it so, whatever nspawn does, before containerd and the kubelet start
  cat >"$u/etc/systemd/system/tb-rshared.service" <<'EOT'
[Unit]
Description=testbed: / mounted rshared, as on a VM
DefaultDependencies=no
Before=sysinit.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount --make-rshared /
EOT
  ln -sf ../tb-rshared.service "$u/etc/systemd/system/sysinit.target.wants/tb-rshared.service"
  # a machine-id of its own (the base's was made by debootstrap, so every node would share it), kept
  # across reboots like a VM's disk; /var/lib/dbus/machine-id is the same id, as on a Debian install
  tr -d '-' </proc/sys/kernel/random/uuid >"$u/etc/machine-id"; chmod 444 "$u/etc/machine-id"
  mkdir -p "$u/var/lib/dbus"; ln -sf /etc/machine-id "$u/var/lib/dbus/machine-id"
  # the server's keypair, as cloud-init would install it, for root and the image's default user
  duid=$(awk -F: '$1=="debian"{print $3":"$4}' "$TB_CACHE/base/etc/passwd")
  for h in root home/debian; do install -m 600 "$keys" "$u/$h/.ssh/authorized_keys"; chmod 700 "$u/$h/.ssh"; done
  chown -R "$duid" "$u/home/debian"
  chmod 755 "$u/home/debian"
  power_on ;;
on) power_on ;;
off) power_off ;;
reboot)
  p=$(sup); alive "$p" || die "node $id is not running"
  # Written down first (the supervisor reads it every second), then the HUP that wakes it.
  echo reboot >"$d/request.tmp" && mv -f "$d/request.tmp" "$d/request"
  kill -HUP "$p" ;;
down)
  # A deleted server is off the network at once (Nova destroys it and Neutron unbinds its port;
  # its IP may be given to a new server at once): the link goes before the clean poweroff, which
  # may take up to 10 s. Otherwise a new server with the same IP meets the old one still
  # answering ssh on it (seen: `kos up` re-creating a lost master ran its script on the dying one).
  ip -n "$NS" link set eth0 down 2>/dev/null || true
  power_off
  cg_remove "$d/cgroups"
  ip netns del "$NS" 2>/dev/null || true     # takes the veth pair with it
  if grep -q " $d/" /proc/mounts; then log "WARNING: node $id left mounts:"; grep " $d/" /proc/mounts >&2; fi
  # Its console (the supervisor's lines, systemd's boot and shutdown) outlives it, for the
  # post-mortem of a test that failed on it: $TB_RUN/gone/<id>-<hostname>.console.log
  mkdir -p "$TB_RUN/gone"
  cp "$d/console.log" "$TB_RUN/gone/$id-$(cat "$d/hostname" 2>/dev/null || echo unknown).console.log" 2>/dev/null || true
  rm -rf "$d" ;;
running)
  alive "$(cat "$d/nspawn.pid" 2>/dev/null)" ;;
mem) cg_mem "$d/cgroups" ;;
ls) ls "$TB_RUN/nodes" 2>/dev/null | grep -E '^[0-9a-f]{8}$' || true ;;
*) die "unknown command $cmd" ;;
esac
