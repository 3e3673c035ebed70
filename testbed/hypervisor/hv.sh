#!/bin/bash
# hv.sh start|stop|restart|status|leaks -- the test hypervisor (hypervisor.py) as a background service.
#
#   start     needs the deployer namespace with the test cloud in it (with-testbed.sh does both) and
#             OS_CLIENT_CONFIG_FILE; returns once the sandbox is built (router, ext, deployer's eth0)
#   stop      TERM: every node powered off and removed, then the sandbox; a leak check follows.
#             Also cleans up after a hypervisor that died (from the state on disk).
#   restart   USR1 (exits, leaves every node running), then start: the new one adopts them
#   status    pid, sandbox and nodes;   leaks [all]   what is left (see nodes/sandbox.sh)
# Env: TB_PREFIX, TB_RUN, TB_CACHE (nodes/lib.sh), TB_CLOUD, TB_ADMIN_CLOUD (default: $KOS_TEST_CLOUD_USER/_ADMIN, testbed-demo/-admin), TB_ROUTER, TB_POLL.
# Log: $TB_RUN/hypervisor.log (kept after stop).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../nodes/lib.sh"
PIDF=$TB_RUN/hypervisor.pid LOGF=$TB_RUN/hypervisor.log
pid() { cat "$PIDF" 2>/dev/null || true; }

start() {
  if alive "$(pid)"; then log "hypervisor already running (pid $(pid))"; return 0; fi
  [[ -e /run/netns/$(ns deployer) ]] || die "no netns $(ns deployer): start the test cloud in it first (with-testbed.sh)"
  [[ -n ${OS_CLIENT_CONFIG_FILE:-} ]] || die "OS_CLIENT_CONFIG_FILE is not set (the test cloud's clouds.yaml)"
  mkdir -p "$TB_RUN"; rm -f "$TB_RUN/ready"
  # nsenter --net (not ip netns exec, which remounts /sys): the nodes need the host's cgroup mounts
  setsid nsenter --net="/run/netns/$(ns deployer)" /usr/bin/python3 "$HERE/hypervisor.py" </dev/null >>"$LOGF" 2>&1 &
  echo $! >"$PIDF"
  for _ in $(seq 1 600); do
    [[ -f $TB_RUN/ready ]] && { log "hypervisor up (pid $(pid), log $LOGF)"; return 0; }
    alive "$(pid)" || break
    sleep 0.2
  done
  tail -20 "$LOGF" >&2
  die "hypervisor did not get ready (log: $LOGF)"
}
stop() {
  local p; p=$(pid)
  if alive "$p"; then
    kill -TERM "$p"
    for _ in $(seq 1 600); do alive "$p" || break; sleep 0.1; done
    alive "$p" && { log "hypervisor $p did not stop in 60 s: KILL"; kill -KILL "$p"; }
  fi
  # whatever a dead hypervisor left behind
  /usr/bin/python3 "$HERE/hypervisor.py" --teardown >>"$LOGF" 2>&1 || true
  rm -f "$PIDF"
  "$TB_NODES_DIR/sandbox.sh" leaks
}
case ${1:-} in
start) start ;;
stop) stop ;;
restart)
  p=$(pid); if alive "$p"; then kill -USR1 "$p"; for _ in $(seq 1 300); do alive "$p" || break; sleep 0.1; done; fi
  start ;;
status)
  alive "$(pid)" && echo "hypervisor: running, pid $(pid)" || echo "hypervisor: not running"
  cat "$TB_RUN/sandbox.json" 2>/dev/null && echo
  for i in $("$TB_NODES_DIR/node.sh" ls); do
    echo "node $i: $(cat "$TB_RUN/nodes/$i/meta.json" 2>/dev/null) mem(MiB charged rss): $("$TB_NODES_DIR/node.sh" mem "$i")"
  done ;;
leaks) "$TB_NODES_DIR/sandbox.sh" leaks "${2:-}" ;;
*) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
