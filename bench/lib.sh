# Sourced by the benchmarks (bench/up.sh, bench/vs-kubeadm.sh): what each needs before it measures.
#   bench_init NAME   refuses to run outside testbed/with-testbed.sh or without GNU time; sets KOS (built
#                     with cargo when KOS is not set), TIME, WORK (a new /tmp/kos-NAME.* folder) and
#                     CLUSTERS (settings files `kos destroy` takes at exit; KEEP=1 keeps WORK)
#   bench_home        HOME and KUBECONFIG inside WORK, never the user's (after testbed/k8s/build.sh, whose
#                     Go caches live under the real HOME)
#   bench_settings CLUSTER POD_CIDR   the settings' lines every benchmark cluster shares: the test bed's cloud,
#                     its keypair and the artifact set $ARTIFACTS (the caller adds its nodes)
bench_init() {
  : "${KOS_TEST_NODES:?run me under testbed/with-testbed.sh}"
  : "${TC_HOME:?run me under testbed/with-testbed.sh}"
  TIME=/usr/bin/time
  [ -x "$TIME" ] || { echo "GNU time is missing: apt-get install time" >&2; exit 1; }
  if [ -z "${KOS:-}" ]; then
    KOS=$ROOT/target/release/kos
    (cd "$ROOT" && CARGO_NET_OFFLINE=true cargo build -q --release -p kos)
  fi
  WORK=$(mktemp -d "/tmp/kos-$1.XXXXXX")
  CLUSTERS=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  for s in "${CLUSTERS[@]}"; do "$KOS" destroy --yes -q -f "$s" >/dev/null 2>&1 || echo "destroy of $s failed" >&2; done
  [ "${KEEP:-}" = 1 ] && echo "work folder kept: $WORK" || rm -rf "$WORK"
}
bench_home() {
  export HOME=$WORK/home KUBECONFIG=$WORK/home/kubeconfig
  mkdir -p "$HOME"
}
bench_settings() {
  echo "cluster: {name: $1}"
  echo "cloud: {image: tiny, flavor: m1.tiny, network: demo-net, router: demo-router, floating_ip_pool: public, key_name: demo-key}"
  echo "ssh: {user: debian, private_key: $TC_HOME/demo-key.pem}"
  echo "networking: {pod_cidr: $2}"
  echo "artifacts: {source: local, dir: $ARTIFACTS}"
}
