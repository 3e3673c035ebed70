#!/bin/bash
# node-start.sh ID -- the supervisor of one node (started by node.sh, detached). Joins the node's own
# cgroups, then runs `systemd-nspawn --boot` (real systemd as the node's PID 1) on an overlay of the
# base in the node's network namespace, and starts it again when the node reboots:
#   nspawn exit 133 (reboot from inside) or SIGHUP (Nova reboot, see node.sh reboot) -> boot again
#   SIGTERM                                                   -> clean poweroff, exit
set -euo pipefail
source "$(dirname "$0")/lib.sh"
id=$1; d=$TB_RUN/nodes/$id
cg_enter "$TB_PREFIX-$id" "$d/cgroups"
# containerd's/docker's snapshotters and kubelet state cannot live on the overlay root (overlayfs refuses
# an overlayfs upper dir): plain host directories, bind-mounted
args=()
for v in containerd docker kubelet; do mkdir -p "$d/var-lib-$v"; args+=(--bind="$d/var-lib-$v:/var/lib/$v"); done
[[ -e /dev/kmsg ]] && args+=(--bind-ro=/dev/kmsg)
[[ -e /dev/net/tun ]] && args+=(--bind=/dev/net/tun)
export SYSTEMD_SECCOMP=0                          # runc needs keyctl, mount ... (no nspawn syscall filter)
export SYSTEMD_NSPAWN_API_VFS_WRITABLE=network   # /proc/sys/net writable: it is per netns; vm.*/kernel.* stay ro
stop=0; again=0; child=
trap 'stop=1; [[ -n $child ]] && kill -TERM "$child" 2>/dev/null' TERM INT
trap 'again=1; [[ -n $child ]] && kill -TERM "$child" 2>/dev/null' HUP
while :; do
  systemd-nspawn --quiet --register=no --keep-unit --boot --console=passive \
     --resolv-conf=off --timezone=off --link-journal=no --capability=CAP_NET_ADMIN \
     --machine="$TB_PREFIX-$id" --hostname="$(cat "$d/hostname")" \
     --directory="$TB_CACHE/base" --overlay="$TB_CACHE/base:$d/upper:/" \
     --network-namespace-path="/run/netns/$(ns "n$id")" "${args[@]}" &
  child=$!; echo "$child" >"$d/nspawn.pid"
  while :; do rc=0; wait "$child" || rc=$?; alive "$child" || break; done   # wait returns early on signals
  log "node $id: nspawn exited rc=$rc"
  if [[ $stop == 1 ]]; then exit 0; fi
  if [[ $rc == 133 || $again == 1 ]]; then again=0; log "node $id: rebooting"; continue; fi
  exit "$rc"
done
