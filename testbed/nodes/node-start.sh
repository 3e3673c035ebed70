#!/bin/bash
# node-start.sh ID -- the supervisor of one node (started by node.sh, detached). Joins the node's own
# cgroups, then runs `systemd-nspawn --boot` (real systemd as the node's PID 1) on an overlay of the
# base in the node's network namespace, and starts it again when the node reboots:
#   nspawn exit 133 (reboot from inside) or SIGHUP (Nova reboot, see node.sh reboot) -> boot again
#   SIGTERM                                                   -> clean poweroff, exit
#
# Signals are only recorded by the traps; the loop below carries them out. A request is delivered to
# the node's systemd (SIGRTMIN+5 reboot, SIGRTMIN+4 poweroff) only once that PID 1 blocks or catches
# the signal, and it is kept pending until nspawn exits. Why (this was the "reboot not seen" flake):
#  - the kernel silently DROPS a signal sent to the PID 1 of a PID namespace that neither blocks nor
#    catches it. The old supervisor TERMed nspawn, which forwards SIGRTMIN+3 to the node's PID 1 once
#    and forgets it; in the first tens of ms of a boot (more under load) that PID 1 is nspawn's inner
#    child or an early systemd without its signalfd yet, so the request vanished: the node just went on
#    booting, and nspawn's next TERM became an "immediate termination" (no clean shutdown);
#  - the old HUP trap ran `[[ -n $child ]] && kill -TERM "$child"`: when $child was an nspawn that had
#    already exited and been reaped (a HUP between a node's exit and the next boot), kill failed and,
#    under set -e, that ended the supervisor: the next boot's nspawn ran on as an orphan, no reboot or
#    poweroff reached it again, and `node.sh down` leaked it;
#  - a HUP before the trap was set (during cg_enter) killed the supervisor (SIGHUP's default action).
# A trap that only sets a flag cannot fail, and the wait below wakes up at least once a second, so a
# signal that lands between the flag check and `wait` is not lost either.
# A Nova reboot is also written down: node.sh reboot leaves `reboot` in $d/request before its HUP, and
# the loop reads that file every second, so a reboot does not depend on the trap. Why (the soak's
# "node C rebooted" timeouts of 2026-11-26): a signal that is ignored when a non-interactive bash
# starts cannot be trapped, silently. The soak ran under `nohup`, which ignores SIGHUP for every
# descendant: the trap never fired and every Nova reboot was lost (the request file's log line said
# `trap seen: again=0` in each soak run, `again=1` in a test bed started without nohup). node.sh now
# also starts the supervisor with HUP, TERM and INT at their defaults (`env --default-signal`).
set -euo pipefail
stop=0; again=0; child=
trap 'stop=1' TERM INT
trap 'again=1' HUP
source "$(dirname "$0")/lib.sh"
id=$1; d=$TB_RUN/nodes/$id
cg_enter "$TB_PREFIX-$id" "$d/cgroups"
# containerd's/docker's snapshotters and kubelet state cannot live on the overlay root (overlayfs refuses
# an overlayfs upper dir): plain host directories, bind-mounted
args=()
for v in containerd docker kubelet; do mkdir -p "$d/var-lib-$v"; args+=(--bind="$d/var-lib-$v:/var/lib/$v"); done
# the kubelet's OOM watcher reads /dev/kmsg (the host's log: the node has no kernel of its own). The
# host has kernel.dmesg_restrict=1, so reading needs CAP_SYSLOG; the bind stays read-only
[[ -e /dev/kmsg ]] && args+=(--bind-ro=/dev/kmsg --capability=CAP_SYSLOG)
[[ -e /dev/net/tun ]] && args+=(--bind=/dev/net/tun)
# kernel-wide sysctls the kubelet checks (setupKernelTunables) are the host's and read-only in the node.
# A VM has its own: each node gets files of its own on its disk, written at every boot with the values
# the kubelet wants, and bound over those /proc/sys entries (writes land in the file, not the kernel).
# nspawn mounts binds onto /proc after it mounted the node's /proc, from inside the node's root: the
# source must be a path in the node, not on the host ("Failed to stat ...: No such file or directory")
SYSCTLS="vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1
         kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000"
SYSCTL_DIR=/usr/local/lib/testbed-sysctl                # in the node
for kv in $SYSCTLS; do k=${kv%%=*}; args+=(--bind="$SYSCTL_DIR/${k//\//.}:/proc/sys/$k"); done
export SYSTEMD_SECCOMP=0                          # runc needs keyctl, mount ... (no nspawn syscall filter)
export SYSTEMD_NSPAWN_API_VFS_WRITABLE=network   # /proc/sys/net writable: it is per netns; vm.*/kernel.* stay ro

# the node's PID 1 (nspawn's child) if it handles signal $1 (blocked: systemd's signalfd, or caught)
handles() {
  local pid m blk cgt; pid=$(pgrep -P "$child" 2>/dev/null | head -1) || return 1
  [[ -n $pid ]] || return 1
  m=$(awk '$1=="SigBlk:" || $1=="SigCgt:" {printf "%s ", $2}' "/proc/$pid/status" 2>/dev/null) || return 1
  read -r blk cgt <<<"$m"; [[ -n ${cgt:-} ]] || return 1
  (( ((0x$blk | 0x$cgt) >> ($1 - 1)) & 1 )) || return 1
  echo "$pid"
}
RTMIN=$(kill -l RTMIN)
while :; do
  again=0        # a reboot asked for while the node was down is done by this boot
  [[ $(cat "$d/request" 2>/dev/null) == reboot ]] && rm -f "$d/request"
  mkdir -p "$d/upper$SYSCTL_DIR"   # written while no overlay is mounted on the upper dir
  for kv in $SYSCTLS; do k=${kv%%=*}; echo "${kv#*=}" >"$d/upper$SYSCTL_DIR/${k//\//.}"; done
  # --console=read-only: the node's console (a pty) is copied to console.log as it is written.
  # `passive` (used before) leaves the pty undrained: nspawn 252 copied the first ~18 KB, then the
  # node's systemd blocked in write() to /dev/console (PID 1 in n_tty_write) and advanced only when
  # something else woke nspawn. A boot and a shutdown with a few stop jobs' progress lines fill
  # that: the "worker-1 rebooted" timeouts (a shutdown stalled for minutes, in CI on 2026-11-27).
  systemd-nspawn --quiet --register=no --keep-unit --boot --console=read-only \
     --resolv-conf=off --timezone=off --link-journal=no --capability=CAP_NET_ADMIN,CAP_SYS_RESOURCE,CAP_IPC_LOCK \
     --machine="$TB_PREFIX-$id" --hostname="$(cat "$d/hostname")" \
     --directory="$TB_CACHE/base" --overlay="$TB_CACHE/base:$d/upper:/" \
     --network-namespace-path="/run/netns/$(ns "n$id")" "${args[@]}" &
  child=$!; echo "$child" >"$d/nspawn.pid"
  asked=; since=
  while :; do
    if [[ -f $d/request ]]; then
      r=$(cat "$d/request" 2>/dev/null || true); rm -f "$d/request"
      log "node $id: ${r:-?} requested (trap seen: again=$again)"
      [[ $r == reboot ]] && again=1
    fi
    want=
    if [[ $stop == 1 ]]; then want=poweroff; elif [[ $again == 1 ]]; then want=reboot; fi
    if [[ -n $want && $asked != "$want" ]]; then
      sig=$(( RTMIN + $([[ $want == reboot ]] && echo 5 || echo 4) ))
      if pid=$(handles "$sig"); then
        kill -n "$sig" "$pid" 2>/dev/null && { asked=$want; log "node $id: $want asked of its systemd"; } || true
      fi
      since=${since:-$SECONDS}
      # Nova's soft reboot turns hard after 120 s (libvirt wait_soft_reboot_seconds); node.sh off
      # kills the PID 1 itself after 10 s
      if [[ $want == reboot ]] && (( SECONDS - since > 120 )); then
        log "node $id: no clean reboot in 120 s, killing its PID 1"
        pid=$(pgrep -P "$child" | head -1) || true; [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
    sleep 1 & tick=$!
    rc=0; who=; wait -n -p who "$child" "$tick" || rc=$?   # also returns when a trapped signal arrives
    [[ ${who:-} == "$tick" ]] || kill "$tick" 2>/dev/null || true   # no sleep left in the node's cgroups
    [[ ${who:-} == "$child" ]] && break
  done
  log "node $id: nspawn exited rc=$rc"
  if [[ $stop == 1 ]]; then exit 0; fi
  if [[ $rc == 133 || $again == 1 ]]; then log "node $id: rebooting"; continue; fi
  exit "$rc"
done
