#!/usr/bin/env bash
# Benchmark (prints figures; not a test): `kos up` of N real nodes from nothing on the test bed.
#
#   testbed/with-testbed.sh bench/up.sh [N ...]     (default N: 1 3 10)
#
# For each N: 1 master (with a floating IP) + N-1 workers; `kos up -v` of every phase, with the
# real artifact set of testbed/k8s/build.sh (Kubernetes, etcd, CoreDNS, containerd, runc, CNI,
# images), until every node, the control plane and CoreDNS are Ready; then the no-op re-run,
# then `kos destroy`. Printed: the artifact set's cold and warm build times, wall time of both
# runs, kos's API calls, kos's peak RSS (GNU time's "Maximum resident set size"), and the first
# run's time per phase (kos's own `time:` lines). Two no-op re-runs: the first fills the hash
# caches (on the nodes and locally), the second is what a re-run costs from then on. Beside kos's time for N, the cloud's own
# create→SSH for the same N in the same run (`openstack server create --min N --max N --wait`,
# then until every server answers SSH), and both as ratios to N=1: what kos adds beyond what
# the cloud takes. Mind the test cloud's quota (25 instances).
# Build the artifact set before the test bed (the deployer namespace has no internet):
#   testbed/k8s/build.sh && testbed/with-testbed.sh bench/up.sh
# Env: KOS (default: target/release/kos, built with cargo when KOS is not set), KEEP=1 keeps the
# work folder (settings, logs, state).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"
bench_init bench-up
ARTIFACTS=$("$ROOT/testbed/k8s/build.sh" 2>"$WORK/build.log" | tail -n1) || { cat "$WORK/build.log" >&2; exit 1; }
CACHE=$(dirname "$ARTIFACTS")
cold=0; for f in "$CACHE"/*/.build-seconds; do cold=$(( cold + $(cat "$f") )); done
echo "artifact set $ARTIFACTS ($(du -sh "$ARTIFACTS" | cut -f1)): cold build $cold s (sum of each component's first build), warm $(sed -n 's/.*this run: \([0-9]*\) s.*/\1/p' "$WORK/build.log") s"
bench_home

settings() { # settings N CLUSTER -> path
  local f=$WORK/$2/settings.yaml
  mkdir -p "$WORK/$2"
  {
    bench_settings "$2" 10.58.0.0/16
    echo "nodes:"
    echo "  - {name: m1, role: master, floating_ip: true}"
    for i in $(seq 2 "$1"); do echo "  - {name: w$i, role: worker}"; done
  } >"$f"
  echo "$f"
}

# run LOG SETTINGS: kos up under GNU time; prints "seconds rss_mib api_calls"
run() {
  local t0 t1
  t0=$(date +%s.%N)
  if ! "$TIME" -v -o "$1.time" "$KOS" up -v -f "$2" >"$1" 2>&1; then
    echo "kos up failed (log $1):" >&2; grep -E 'FAILED|error' "$1" | tail -5 >&2; return 1
  fi
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f ", b - a }'
  awk -F': ' '/Maximum resident set size/ { printf "%.0f ", $2 / 1024 }' "$1.time"
  sed -n 's/.*, \([0-9]*\) API calls).*/\1/p' "$1" | tail -n1
}

# cloud_ssh N: seconds from `openstack server create` of N servers to SSH answering on all
cloud_ssh() {
  local n=$1 name=bc$1 t0 t1 ips ip
  t0=$(date +%s.%N)
  openstack server create -f value -c id --image tiny --flavor m1.tiny --network demo-net --key-name demo-key \
    --min "$n" --max "$n" --wait "$name" >/dev/null
  mapfile -t ips < <(openstack server list -f value -c Networks --name "^$name" | grep -oE '[0-9]+(\.[0-9]+){3}')
  for ip in "${ips[@]}"; do
    until ssh -q -i "$TC_HOME/demo-key.pem" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
      -o ConnectTimeout=2 "debian@$ip" true 2>/dev/null; do sleep 0.2; done
  done
  t1=$(date +%s.%N)
  openstack server list -f value -c ID --name "^$name" | xargs -r openstack server delete --wait
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }'
}

phase() { # phase LOG NAME: seconds of kos's `time: NAME: X s` line
  sed -n "s/^time: $2: \([0-9.]*\) s$/\1/p" "$1" | tail -n1
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-4s %8s %8s %8s %6s %8s %8s | %6s %9s %7s %8s %5s %9s %6s %6s %6s | %9s %7s %7s\n" \
  N "up (s)" "no-op 1" "no-op" calls "RSS MiB" "no-op" observe instances routes "render" ssh "on nodes" addons ready verify \
  "cloud→ssh" "kos/N1" "cloud/N1"
[ $# -gt 0 ] || set -- 1 3 10
for n in "$@"; do
  name=bu$n
  s=$(settings "$n" "$name")
  CLUSTERS+=("$s")
  read -r up rss calls < <(run "$WORK/$name/up.log" "$s") || { "$KOS" destroy --yes -q -f "$s" || true; continue; }
  grep -q '^up to date: 0 changes' "$WORK/$name/up.log" && echo "warning: the first run of N=$n changed nothing?" >&2
  # The first re-run fills the nodes' and the local hash caches; the second is the steady state.
  read -r noop1 _ _ < <(run "$WORK/$name/noop1.log" "$s") || noop1=failed
  read -r noop noop_rss _ < <(run "$WORK/$name/noop.log" "$s") || noop=failed
  for f in noop1 noop; do
    grep -q '^up to date: 0 changes' "$WORK/$name/$f.log" || echo "warning: a re-run of N=$n changed something (log $WORK/$name/$f.log)" >&2
  done
  l=$WORK/$name/up.log
  "$KOS" destroy --yes -q -f "$s" >/dev/null
  cloud=$(cloud_ssh "$n")
  [ -n "${up1:-}" ] || { up1=$up; cloud1=$cloud; }
  ratios=$(awk -v u="$up" -v u1="$up1" -v c="$cloud" -v c1="$cloud1" 'BEGIN { printf "%7.2f %7.2f", u / u1, c / c1 }')
  printf "%-4s %8s %8s %8s %6s %8s %8s | %6s %9s %7s %8s %5s %9s %6s %6s %6s | %9s %s\n" "$n" "$up" "$noop1" "$noop" "$calls" "$rss" "${noop_rss:-}" \
    "$(phase "$l" observe)" "$(phase "$l" instances)" "$(phase "$l" 'network (routes)')" "$(phase "$l" render)" \
    "$(phase "$l" ssh)" "$(phase "$l" 'runtime + kubernetes + network')" "$(phase "$l" addons)" "$(phase "$l" ready)" "$(phase "$l" verify)" \
    "$cloud" "$ratios"
  # Where the steady re-run's time goes (its own `time:` lines).
  l=$WORK/$name/noop.log
  echo "     no-op of N=$n: observe $(phase "$l" observe) s, ssh $(phase "$l" ssh) s, render $(phase "$l" render) s," \
    "node phases $(phase "$l" 'runtime + kubernetes + network') s, addons $(phase "$l" addons) s, ready $(phase "$l" ready) s," \
    "verify $(phase "$l" verify) s; $(sed -n 's/^up to date: 0 changes (\(.*\))$/\1/p' "$l")"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
