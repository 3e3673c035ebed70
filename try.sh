#!/usr/bin/env bash
# try.sh -- see kos build a Kubernetes cluster on OpenStack, on this machine, without a cloud of
# your own (as root, on Linux; needs cargo and go). It uses the project's test bed (testbed/README.md):
# a real OpenStack on loopback in the network namespace ktry-deployer, a real Debian node for each
# Nova server, an emulated Neutron router, and the namespace ktry-ext as "the internet".
#
#   ./try.sh [up]         install what is needed (the same scripts ./test.sh uses), start the test bed
#                         in the background (it stays up), `kos up -f examples/testbed.yaml` in it,
#                         then `kubectl get nodes -o wide` and a sample web app answering on a worker's
#                         floating IP from outside. Again on a running try-out: converges (kos up is
#                         idempotent), no second test bed.
#   ./try.sh shell        an interactive shell inside the test bed (deployer namespace) with the cloud's
#                         environment, KUBECONFIG and PATH set: kos, kubectl, openstack just work
#   ./try.sh run CMD...   one command there, e.g. ./try.sh run kubectl get pods -A
#   ./try.sh status       is the try-out running? (its PIDs, namespaces, the cluster's nodes)
#   ./try.sh down         kos destroy --purge, then the test bed's teardown; nothing is left running
#
# Files: /var/tmp/kos-testbed-run/ktry-tryout/ (testbed.log, env.sh, kubeconfig, kos's state/, PIDs);
# the test cloud's TC_HOME is /var/tmp/kos-testbed-run/ktry-cloud (the settings name its key there).
# The test bed's prefix is ktry (at most 5 characters), so it never meets ./test.sh's (kos).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")" && pwd)
cd "$ROOT"

PREFIX=ktry
CLUSTER=try                                   # cluster.name in the settings
SETTINGS=$ROOT/examples/testbed.yaml
RUNDIR=/var/tmp/kos-testbed-run/$PREFIX-tryout
DEP=/run/netns/$PREFIX-deployer
EXT=$PREFIX-ext
NODEPORT=30080                                # the sample web app's NodePort
BUSYBOX=registry.k8s.io/e2e-test-images/busybox:1.36.1-1   # in the artifact set (testbed/k8s/build.sh)

# The test bed of the try-out, whatever test bed this shell may be inside of.
# (`_stay` runs inside the test bed and keeps its environment.)
if [[ ${1:-} != _stay ]]; then
  for v in $(compgen -e | grep -E '^(OS_|TB_|KOS_TEST_|KOS_SETTINGS$|KOS_STATE_DIR$|TC_HOME$)'); do unset "$v"; done
fi
export TB_PREFIX=$PREFIX TB_TC_HOME=/var/tmp/kos-testbed-run/$PREFIX-cloud

T0=$(date +%s)
STEPS=()
say() { printf '[try.sh +%ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }
# step NAME CMD...: runs CMD, prints its elapsed time and keeps it for the summary; stops on failure.
step() {
  local name=$1 t rc; shift
  t=$(date +%s); say "== $name"
  "$@"; rc=$?
  STEPS+=("$(printf '  %-58s %5ss' "$name" "$(( $(date +%s) - t ))")")
  [[ $rc == 0 ]] || die "$name failed (exit $rc)"
  say "$name: $(( $(date +%s) - t ))s"
}
summary() {
  echo; echo "time per step:"; printf '%s\n' "${STEPS[@]}"
  printf '  %-58s %5ss\n' "total" "$(( $(date +%s) - T0 ))"
}

# A process of ours still running (not a zombie) whose command line contains $2.
ours() {
  local pid=$1 what=$2 state
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/stat ]] || return 1
  state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
  [[ -n $state && $state != Z ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$what"
}
pidof_file() { cat "$RUNDIR/$1" 2>/dev/null; }
testbed_alive() { ours "$(pidof_file testbed.pid)" with-testbed.sh; }
stay_alive() { ours "$(pidof_file stay.pid)" "sleep infinity"; }
running() { testbed_alive && stay_alive && [[ -e $DEP && -f $RUNDIR/env.sh ]]; }

# CMD inside the deployer namespace with the test bed's environment (env.sh); cwd: the repository.
in_bed() {
  running || die "no try-out is running: ./try.sh up starts one"
  nsenter --net="$DEP" -- bash -c 'source "$1"; shift; cd "$0"; exec "$@"' "$ROOT" "$RUNDIR/env.sh" "$@"
}

# --- run by with-testbed.sh inside the deployer namespace once the test bed is up: write the
# environment for `shell`/`run` (this is the ready signal), then stay until `down` ends us.
stay() {
  echo "$$" >"$RUNDIR/stay.pid"
  {
    echo "# the try-out's test bed, written by try.sh; sourced by ./try.sh shell and ./try.sh run"
    for v in $(compgen -e | grep -E '^(OS_|TB_|KOS_TEST_CLOUD|TC_HOME$)'); do printf 'export %s=%q\n' "$v" "${!v}"; done
    printf 'export KUBECONFIG=%q\n' "$RUNDIR/kubeconfig"          # kos merges context kos-$CLUSTER here
    printf 'export KOS_STATE_DIR=%q\n' "$RUNDIR/state"           # kos's PKI and state of the cluster
    printf 'export PATH=%q:"$PATH"\n' "$RUNDIR/bin"               # kos, and the artifact set's kubectl
  } >"$RUNDIR/env.sh.tmp"
  mv "$RUNDIR/env.sh.tmp" "$RUNDIR/env.sh"
  exec sleep infinity
}

# --- up
artifact_dir() { sed -n 's/^ *dir: *//p' "$SETTINGS" | head -n1; }
artifacts() {
  local want; want=$(artifact_dir)
  # A complete folder (every file matches its SHA256SUMS line, as build.sh's own warm path checks)
  # is used as it is: it may be in use by a running test; otherwise build.sh makes it.
  if [[ -f $want/SHA256SUMS ]] && (cd "$want" && sha256sum --quiet -c SHA256SUMS); then
    say "artifact set $want: complete (every file matches SHA256SUMS)"; return 0
  fi
  command -v go >/dev/null || die "testbed/k8s/build.sh needs Go (1.26, https://go.dev/dl/) to build Kubernetes from its modules"
  local got; got=$(testbed/k8s/build.sh | tail -n1) || return 1
  [[ $got == "$want" ]] || die "testbed/k8s/build.sh wrote $got, but $SETTINGS names $want (KOS_K8S_CACHE set?)"
}

install_kos() {
  command -v cargo >/dev/null || die "cargo is needed to build kos (https://rustup.rs)"
  cargo install --locked --path crates/kos || return 1
  local kos; kos=$(command -v kos || echo "${CARGO_HOME:-$HOME/.cargo}/bin/kos")
  [[ -x $kos ]] || die "cargo install did not leave kos at $kos"
  mkdir -p "$RUNDIR/bin"
  ln -sfn "$kos" "$RUNDIR/bin/kos"
  ln -sfn "$(artifact_dir)/bin/kubectl" "$RUNDIR/bin/kubectl"
  "$kos" --version 2>/dev/null || true
}

start_testbed() {
  if running; then
    say "the try-out's test bed is already up (with-testbed.sh pid $(pidof_file testbed.pid)): reusing it"; return 0
  fi
  local t seen
  if testbed_alive; then   # started by an earlier ./try.sh that was interrupted: wait for it
    say "the try-out's test bed is starting (with-testbed.sh pid $(pidof_file testbed.pid)): waiting for it"
    seen=$(wc -l <"$RUNDIR/testbed.log" 2>/dev/null || echo 0)
  else
    if compgen -G "/run/netns/$PREFIX-*" >/dev/null; then
      say "a stale $PREFIX test bed (its supervisor is gone): tearing it down first"
      testbed/with-testbed.sh --down >>"$RUNDIR/testbed.log" 2>&1 || die "could not remove it: see $RUNDIR/testbed.log"
    fi
    rm -rf "$RUNDIR/env.sh" "$RUNDIR/stay.pid" "$RUNDIR/testbed.pid" "$RUNDIR/state" "$RUNDIR/kubeconfig"
    echo "=== $(date -Is) ./try.sh up" >>"$RUNDIR/testbed.log"
    seen=$(wc -l <"$RUNDIR/testbed.log")
    # Its own session, so it outlives this script and the terminal; with-testbed.sh tears everything
    # down when its command (the `stay` above) ends.
    setsid testbed/with-testbed.sh "$ROOT/try.sh" _stay >>"$RUNDIR/testbed.log" 2>&1 </dev/null &
    echo $! >"$RUNDIR/testbed.pid"
    say "starting the test bed in the background (pid $!, log $RUNDIR/testbed.log; the test cloud takes 1-3 min)"
  fi
  t=$(date +%s)
  until [[ -f $RUNDIR/env.sh ]]; do
    if ! testbed_alive; then
      tail -n 30 "$RUNDIR/testbed.log" >&2; die "the test bed did not start (log: $RUNDIR/testbed.log)"
    fi
    (( $(date +%s) - t > 900 )) && die "the test bed is not up after 900 s (log: $RUNDIR/testbed.log)"
    # Show the test bed's progress lines as they come.
    local n; n=$(wc -l <"$RUNDIR/testbed.log")
    if (( n > seen )); then
      sed -n "$((seen + 1)),${n}p" "$RUNDIR/testbed.log" | grep -E '^\[testbed|^test cloud' | sed 's/^/    /'
      seen=$n
    fi
    sleep 2
  done
}

WEB_APP="apiVersion: apps/v1
kind: Deployment
metadata: {name: hello, labels: {app: hello}}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers:
      - name: httpd
        image: $BUSYBOX
        imagePullPolicy: IfNotPresent
        env: [{name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
        command: [sh, -c, 'mkdir -p /www && echo \"hello from pod \$(hostname) on \$NODE\" >/www/index.html && exec httpd -f -p 8080 -h /www']
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: hello}
spec:
  type: NodePort
  selector: {app: hello}
  ports: [{port: 80, targetPort: 8080, nodePort: $NODEPORT}]"

web_app() {
  echo "$WEB_APP" | in_bed kubectl --context "kos-$CLUSTER" apply -f - || return 1
  in_bed kubectl --context "kos-$CLUSTER" rollout status deployment/hello --timeout=180s || return 1
  in_bed kubectl --context "kos-$CLUSTER" get pods -l app=hello -o wide
  # kos status -o json: the floating IP as data, not a column of the table.
  FIP=$(in_bed kos status -o json -f "$SETTINGS" 2>/dev/null |
    python3 -c 'import json,sys; print(next((n["floating_ip"] or "") for n in json.load(sys.stdin)["nodes"] if n["node"]=="worker-1"))')
  [[ $FIP =~ ^[0-9.]+$ ]] || { in_bed kos status -f "$SETTINGS"; die "no floating IP of worker-1 in kos status"; }
  say "from outside (namespace $EXT, 203.0.113.1): curl http://$FIP:$NODEPORT/ (worker-1's floating IP)"
  local t=$(date +%s) out
  until out=$(ip netns exec "$EXT" curl -sS --max-time 3 "http://$FIP:$NODEPORT/" 2>&1); do
    (( $(date +%s) - t > 90 )) && { echo "$out" >&2; return 1; }
    sleep 2
  done
  say "4 requests, answered by either pod (kube-proxy balances the NodePort across nodes):"
  echo "    $out"
  for _ in 1 2 3; do echo "    $(ip netns exec "$EXT" curl -sS --max-time 3 "http://$FIP:$NODEPORT/" 2>&1)"; done
}

next_steps() {
  cat <<EOF

kos built cluster '$CLUSTER' (1 master, 2 workers) on the local test OpenStack; the web app 'hello'
answers at http://$FIP:$NODEPORT/ from outside. The test bed keeps running until ./try.sh down.

What to type next:
  ./try.sh shell                          a shell inside the test bed (exit leaves it running); there:
      kos status -f examples/testbed.yaml       servers, fixed and floating IPs, pod ranges, router routes, kubelets
      kubectl --context kos-$CLUSTER get pods -A -o wide
      openstack server list                     the Nova servers kos made (openstack router show demo-router: the routes)
      kos up -f examples/testbed.yaml           converges again; a second run changes nothing
      ssh -F \$KOS_STATE_DIR/$CLUSTER/ssh/config $CLUSTER-worker-1   a node, as kos reaches it
  ./try.sh run kubectl --context kos-$CLUSTER get nodes -o wide    one command, without a shell
  ip netns exec $EXT curl http://$FIP:$NODEPORT/    the app, from "the internet"
  ./try.sh down                           kos destroy --purge, then the test bed goes; nothing is left running
EOF
}

up() {
  mkdir -p "$RUNDIR"
  [[ $(id -u) == 0 ]] || die "run it as root (network namespaces, systemd-nspawn, apt)"
  # scripts/install-test-tools.sh (the tests' judges) is not needed here: ssh, curl, iptables and the
  # openstack CLI come with the test bed's own packages below.
  step "test cloud packages (testbed/cloud/install.sh)" testbed/cloud/install.sh
  step "node packages and base (testbed/nodes/install.sh)" testbed/nodes/install.sh
  step "Kubernetes artifact set (testbed/k8s/build.sh)" artifacts
  step "kos (cargo install --locked --path crates/kos)" install_kos
  step "test bed: OpenStack + hypervisor (testbed/with-testbed.sh)" start_testbed
  step "kos up -f examples/testbed.yaml" in_bed kos up -f "$SETTINGS"
  say "kubectl get nodes -o wide"
  in_bed kubectl --context "kos-$CLUSTER" get nodes -o wide
  step "sample web app: busybox httpd Deployment + NodePort $NODEPORT" web_app
  next_steps
  summary
}

# --- down
down() {
  if running; then
    # --purge: also the cluster's local state (its CA, certificates, known_hosts), as the test bed goes too.
    step "kos destroy -f examples/testbed.yaml --yes --purge" in_bed kos destroy -f "$SETTINGS" --yes --purge
  fi
  step "test bed teardown" teardown
  summary
}
teardown() {
  local tb t; tb=$(pidof_file testbed.pid)
  if testbed_alive; then
    # Ending the test bed's command makes with-testbed.sh tear everything down (its EXIT trap).
    # Still starting: TERM to with-testbed.sh, whose trap runs once its current step is done.
    if stay_alive; then kill -TERM "$(pidof_file stay.pid)"; else kill -TERM "$tb"; fi
    t=$(date +%s)
    while ours "$tb" with-testbed.sh; do
      stay_alive && kill -TERM "$(pidof_file stay.pid)"   # it started in the meantime
      (( $(date +%s) - t > 600 )) && die "with-testbed.sh (pid $tb) still running after 600 s: see $RUNDIR/testbed.log"
      sleep 1
    done
    tac "$RUNDIR/testbed.log" | sed '/tearing down the test bed/q' | tac | grep -E '^\[testbed|LEAK|ERROR|no leaks' | sed 's/^/    /'
  fi
  if compgen -G "/run/netns/$PREFIX-*" >/dev/null; then   # left over by a killed run
    testbed/with-testbed.sh --down >>"$RUNDIR/testbed.log" 2>&1 || say "with-testbed.sh --down reported a problem: see $RUNDIR/testbed.log"
  fi
  rm -rf "$RUNDIR/env.sh" "$RUNDIR/stay.pid" "$RUNDIR/testbed.pid" "$RUNDIR/state" "$RUNDIR/kubeconfig" "$RUNDIR/bashrc"
  local left; left=$(ls /run/netns 2>/dev/null | grep "^$PREFIX-" | tr '\n' ' ')
  [[ -z $left ]] || die "network namespaces left: $left"
  say "no $PREFIX-* network namespace left; the test bed's log stays at $RUNDIR/testbed.log"
}

status() {
  if running; then
    say "running: with-testbed.sh pid $(pidof_file testbed.pid), namespaces: $(ls /run/netns | grep "^$PREFIX-" | tr '\n' ' ')"
    in_bed kos status -f "$SETTINGS"
  elif testbed_alive; then
    say "starting (with-testbed.sh pid $(pidof_file testbed.pid)); log: $RUNDIR/testbed.log"
  else
    say "not running$(compgen -G "/run/netns/$PREFIX-*" >/dev/null && echo " (stale namespaces: ./try.sh down removes them)")"
    return 1
  fi
}

shell() {
  running || die "no try-out is running: ./try.sh up starts one"
  cat >"$RUNDIR/bashrc" <<EOF
[ -f ~/.bashrc ] && . ~/.bashrc
. $RUNDIR/env.sh
cd $ROOT
PS1='(kos try) \w\\$ '
echo "inside the try-out's test bed (netns $PREFIX-deployer). Try: kos status -f examples/testbed.yaml;"
echo "kubectl get pods -A; openstack server list. exit leaves it running; ./try.sh down ends it."
EOF
  nsenter --net="$DEP" -- bash --rcfile "$RUNDIR/bashrc" -i
}

case ${1:-up} in
  up) up ;;
  down) down ;;
  shell) shell ;;
  run) shift; [[ $# -gt 0 ]] || die "usage: ./try.sh run CMD [ARG...]"; in_bed "$@" ;;
  status) status ;;
  _stay) stay ;;
  -h|--help|help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command $1 (up, shell, run CMD..., status, down)" ;;
esac
