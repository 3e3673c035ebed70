#!/bin/bash
# with-testbed.sh CMD [ARG...] -- run CMD with the whole test bed up, and always tear it down after:
#   1. testbed/nodes/install.sh            host packages + node base (a no-op when done; the test
#                                          cloud's packages: testbed/cloud/install.sh, run it first)
#   2. netns $TB_PREFIX-deployer           the test cloud runs inside it (testbed/cloud/up.sh, its own
#                                          127.0.0.1, TC_HOME=$TB_TC_HOME), so it never meets another cloud
#   3. testbed/hypervisor/hv.sh start      router/ext namespaces, every Nova server becomes a node
#   4. CMD, inside the deployer namespace  (nsenter --net): reaches OpenStack on 127.0.0.1 and the
#                                          nodes on their Neutron IPs; nothing else is reachable
#   5. hypervisor stop (nodes + sandbox), cloud down, deployer netns deleted, leak check
# CMD sees the cloud's env.sh (KOS_TEST_CLOUD=1, OS_CLIENT_CONFIG_FILE, OS_CLOUD, KOS_TEST_CLOUD_USER,
# KOS_TEST_CLOUD_ADMIN, TC_HOME) plus KOS_TEST_NODES=1, TB_PREFIX, TB_RUN (sandbox.env/.json: the tenant
# network, subnet, router, gateway, deployer address), TB_CACHE.
# Exit code: CMD's; 1 if the test bed failed to start, or if CMD passed but the teardown leaked.
# with-testbed.sh --down: only the teardown, for a test bed left over by a killed run.
# Env: TB_PREFIX (default kos; two test beds with different prefixes can run side by side),
#      TB_TC_HOME (default /var/tmp/kos-testbed-run/$TB_PREFIX-cloud), see testbed/nodes/lib.sh.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/testbed/nodes/lib.sh"
[[ $# -gt 0 ]] || { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
export TC_HOME=${TB_TC_HOME:-/var/tmp/kos-testbed-run/$TB_PREFIX-cloud}
DEP=/run/netns/$(ns deployer)
t0=$(date +%s)
secs() { echo "$(( $(date +%s) - t0 ))s"; }

# Every node's root is the host's root: the kernel's per-user inotify limit (128 instances by
# default) is shared by all nodes' systemd, journald, containerd and kubelet, which a VM would each
# have to themselves. Ten real nodes exhaust it ("too many open files" from fsnotify; containerd's
# CRI plugin fails to load). The test bed raises the limits while it runs (as kind's docs advise)
# and puts back the values it found when the last test bed on the machine goes down.
INOTIFY=/proc/sys/fs/inotify
INOTIFY_SAVED=/var/tmp/kos-testbed-run/inotify.saved
raise_inotify() {
  mkdir -p "$(dirname "$INOTIFY_SAVED")"
  [[ -f $INOTIFY_SAVED ]] || echo "$(cat $INOTIFY/max_user_instances) $(cat $INOTIFY/max_user_watches)" >"$INOTIFY_SAVED"
  (( $(cat $INOTIFY/max_user_instances) >= 8192 )) || echo 8192 >$INOTIFY/max_user_instances
  (( $(cat $INOTIFY/max_user_watches) >= 524288 )) || echo 524288 >$INOTIFY/max_user_watches
}
restore_inotify() {
  [[ -f $INOTIFY_SAVED ]] || return 0
  ls /run/netns 2>/dev/null | grep -q -- '-deployer$' && return 0   # another test bed still runs
  read -r instances watches <"$INOTIFY_SAVED"
  echo "$instances" >$INOTIFY/max_user_instances; echo "$watches" >$INOTIFY/max_user_watches
  rm -f "$INOTIFY_SAVED"
}

teardown() {
  local rc=$? leaked=0
  trap - EXIT INT TERM
  log "tearing down the test bed ($(secs))"
  "$ROOT/testbed/hypervisor/hv.sh" stop || leaked=1
  if [[ -e $DEP ]]; then
    nsenter --net="$DEP" "$ROOT/testbed/cloud/down.sh" >/dev/null
    for p in $(ip netns pids "$(ns deployer)"); do   # all stopped? (listed, not killed)
      echo "LEAK: process $p still in $(ns deployer): $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"; leaked=1
    done
  fi
  "$TB_NODES_DIR/sandbox.sh" down-deployer
  restore_inotify
  "$TB_NODES_DIR/sandbox.sh" leaks all || leaked=1
  log "test bed down ($(secs)); hypervisor log: $TB_RUN/hypervisor.log, cloud logs: $TC_HOME/log"
  [[ $rc == 0 && $leaked == 1 ]] && { log "ERROR: the test bed leaked (see above)"; rc=1; }
  exit "$rc"
}
if [[ $1 == --down ]]; then trap teardown EXIT; exit 0; fi
"$TB_NODES_DIR/install.sh" || exit 1
[[ -e $DEP ]] && die "$DEP exists: another test bed with prefix $TB_PREFIX is running (another TB_PREFIX" \
  "runs one next to it), or a stale one: TB_PREFIX=$TB_PREFIX testbed/with-testbed.sh --down removes it"
trap teardown EXIT    # from here on, everything is ours to tear down
rm -rf "$TB_RUN/gone"   # consoles of the removed nodes of an earlier run (node.sh down keeps them)
trap 'exit 130' INT TERM
"$TB_NODES_DIR/sandbox.sh" deployer
raise_inotify
log "starting the test cloud in $(ns deployer) (TC_HOME=$TC_HOME)"
nsenter --net="$DEP" "$ROOT/testbed/cloud/up.sh" || { log "ERROR: the test cloud did not start"; exit 1; }
for v in $(compgen -e | grep '^OS_'); do unset "$v"; done
source "$TC_HOME/env.sh"
"$ROOT/testbed/hypervisor/hv.sh" start || exit 1
export KOS_TEST_NODES=1 TB_PREFIX TB_RUN TB_CACHE
log "test bed up in $(secs): running $* in $(ns deployer)"
# CMD in the background (stdin kept), so that a TERM or INT to this script ends it at once and the
# teardown follows; in the foreground, bash would run the trap only once CMD had ended by itself.
nsenter --net="$DEP" -- "$@" <&0 &
CMD_PID=$!
trap 'kill -TERM "$CMD_PID" 2>/dev/null; wait "$CMD_PID"; exit 130' INT TERM
wait "$CMD_PID"
