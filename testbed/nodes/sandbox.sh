#!/bin/bash
# sandbox.sh -- the network sandbox the nodes live in (all of it in network namespaces of our own;
# the root namespace gets no address, route or rule):
#
#   $P-deployer  the deployer: the test cloud's services on ITS 127.0.0.1, the tool under test, the
#                hypervisor; eth0 = an address on the tenant subnet outside Neutron's allocation pool
#   $P-router    the tenant router: bridge tenant0 with the Neutron router's interface address (the
#                subnet's gateway) where every node port and the deployer plug in; extra routes,
#                anti-spoofing (ebtables), floating-IP NAT (iptables) mirrored from Neutron by the
#                hypervisor; busybox httpd serves the offline apt repo on <gateway>:$TB_REPO_PORT;
#                qg = the router's external gateway port (its address on the external subnet)
#   $P-ext       the external network's upstream (the external subnet's gateway address, a client
#                "on the internet" for floating IPs); it has no default route, so nothing leaves
#
#   sandbox.sh deployer                   create $P-deployer (loopback only; idempotent)
#   sandbox.sh up GW/PLEN DEPLOYER_IP [EXT_GW/PLEN ROUTER_EXT_IP]   router, ext, deployer's eth0 (idempotent)
#   sandbox.sh down                       remove router and ext (nodes first: node.sh down)
#   sandbox.sh down-deployer              remove $P-deployer (after the test cloud is stopped)
#   sandbox.sh leaks [all | ID...]        list what is left of the nodes (all: and of the sandbox; ID...:
#                                         of those nodes only); exit 1 if anything is
set -euo pipefail
source "$(dirname "$0")/lib.sh"
D=$(ns deployer); R=$(ns router); X=$(ns ext)
mkdir -p "$TB_RUN"

case ${1:-} in
deployer)
  [[ -e /run/netns/$D ]] || { ip netns add "$D"; ip -n "$D" link set lo up; log "created netns $D"; } ;;
up)
  (( $# == 3 || $# == 5 )) || die "usage: sandbox.sh up GW/PLEN DEPLOYER_IP [EXT_GW/PLEN ROUTER_EXT_IP]"
  gwp=$2 dep=$3 gw=${2%/*} plen=${2#*/}
  [[ -e /run/netns/$D ]] || die "no $D: sandbox.sh deployer first"
  if [[ ! -e /run/netns/$R ]]; then
    ip netns add "$R"
    ip -n "$R" link set lo up
    ip -n "$R" link add tenant0 type bridge
    ip -n "$R" addr add "$gwp" dev tenant0
    ip -n "$R" link set tenant0 up
    # a router, not a host: forward, and no ICMP redirects (pod traffic must really hop through it)
    ip netns exec "$R" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 \
       net.ipv4.conf.default.send_redirects=0 net.ipv4.conf.tenant0.send_redirects=0
    ip -n "$R" route add unreachable default   # replaced by the external gateway's route, if any
    log "created netns $R: tenant0 $gwp"
  fi
  if ! alive "$(cat "$TB_RUN/httpd.pid" 2>/dev/null)"; then
    ip netns exec "$R" setsid busybox httpd -f -p "$gw:$TB_REPO_PORT" -h "$TB_CACHE/repo" \
       </dev/null >>"$TB_RUN/httpd.log" 2>&1 &
    echo $! >"$TB_RUN/httpd.pid"
    log "apt repo served on $gw:$TB_REPO_PORT (pid $!)"
  fi
  if ! ip -n "$D" link show eth0 >/dev/null 2>&1; then
    ip link add "$TB_PREFIX-dep" type veth peer name eth0 netns "$D"
    ip link set "$TB_PREFIX-dep" netns "$R"
    ip -n "$R" link set "$TB_PREFIX-dep" master tenant0 up
    ip -n "$D" addr add "$dep/$plen" dev eth0
    ip -n "$D" link set eth0 up
    ip -n "$D" route add default via "$gw"
    log "deployer eth0 $dep/$plen, default via $gw"
  fi
  if (( $# == 5 )) && [[ ! -e /run/netns/$X ]]; then
    xgwp=$4 rext=$5 xplen=${4#*/}
    ip netns add "$X"
    ip -n "$X" link set lo up
    ip link add qg type veth peer name eth0 netns "$X"
    ip link set qg netns "$R"
    ip -n "$R" addr add "$rext/$xplen" dev qg
    ip -n "$R" link set qg up
    ip -n "$X" addr add "$xgwp" dev eth0
    ip -n "$X" link set eth0 up
    ip -n "$R" route replace default via "${xgwp%/*}" dev qg
    ip -n "$X" route add unreachable default   # the end of the world: fail fast, send nothing further
    ip netns exec "$X" sysctl -qw net.ipv4.ip_forward=1   # (answers "net unreachable" for what it gets)
    log "created netns $X: eth0 $xgwp; router qg $rext/$xplen, default via ${xgwp%/*}"
  fi ;;
down)
  p=$(cat "$TB_RUN/httpd.pid" 2>/dev/null || true)
  alive "$p" && kill -TERM "$p" && log "stopped apt repo server (pid $p)"
  for n in "$R" "$X"; do [[ -e /run/netns/$n ]] && ip netns del "$n" && log "deleted netns $n"; done
  rm -f "$TB_RUN/httpd.pid" ;;
down-deployer)
  [[ -e /run/netns/$D ]] && ip netns del "$D" && log "deleted netns $D"
  true ;;
leaks)
  # leaks [all]: every node (all: and the sandbox);  leaks ID...: only those nodes
  shift; all=; ids='[0-9a-f]{8}'
  if [[ ${1:-} == all ]]; then all=all; elif (( $# )); then ids="($(IFS='|'; echo "$*"))"; fi
  found=0
  leak() { echo "LEAK: $*"; found=1; }
  for n in $(ls /run/netns 2>/dev/null); do
    [[ $n =~ ^$TB_PREFIX-n$ids$ ]] && leak "netns $n"
    [[ $all == all ]] && [[ $n == "$D" || $n == "$R" || $n == "$X" ]] && leak "netns $n"
  done
  for n in $(ls "$TB_RUN/nodes" 2>/dev/null); do [[ $n =~ ^$ids$ ]] && leak "node dir $TB_RUN/nodes/$n"; done
  while read -r _ m _; do [[ $m =~ ^$TB_RUN/nodes/$ids/ ]] && leak "mount $m"; done </proc/mounts
  for c in $(find /sys/fs/cgroup -mindepth 1 -type d -name "$TB_PREFIX-????????" 2>/dev/null); do
    [[ ${c##*/} =~ ^$TB_PREFIX-$ids$ ]] && leak "cgroup $c"; done
  for p in $(pgrep -f -- "--machine=$TB_PREFIX-$ids " || true; pgrep -f "node-start.sh $ids$" || true); do
    [[ $(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -c "^TB_PREFIX=$TB_PREFIX$") == 1 ]] \
      && leak "process $p: $(tr '\0' ' ' <"/proc/$p/cmdline")"
  done
  if [[ $all == all ]]; then
    alive "$(cat "$TB_RUN/httpd.pid" 2>/dev/null)" && leak "apt repo server pid $(cat "$TB_RUN/httpd.pid")"
    alive "$(cat "$TB_RUN/hypervisor.pid" 2>/dev/null)" && leak "hypervisor pid $(cat "$TB_RUN/hypervisor.pid")"
  fi
  [[ $found == 0 ]] && echo "no leaks (prefix $TB_PREFIX, nodes $ids${all:+, and the sandbox})"
  exit $found ;;
*) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
