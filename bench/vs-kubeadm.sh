#!/usr/bin/env bash
# Benchmark (prints figures; not a test): kos beside kubeadm on the same kind of machines, on the test bed.
#
#   testbed/with-testbed.sh bench/vs-kubeadm.sh [WORKERS]     (default 2: 1 master + 2 workers per cluster)
#
# kubespray, KubeOne and Cluster API drive kubeadm underneath, so kubeadm on the same servers with the same
# artifacts is the fairest peer. Two clusters, made the same way by the cloud (`kos up --only instances,routes`:
# servers, ports, router routes), and both given the same container runtime, images and pod network by kos's
# runtime and network phases (containerd, the artifact set's images, the CNI config and cbr0), so only the
# bootstrapping differs:
#   kos      `kos up` (certificates, kubeconfigs, kubelet, kube-proxy, static pods, CoreDNS, waits for Ready);
#            then its no-op re-run, kube-bench on its master and a worker, and its cluster is destroyed, so that
#            kubeadm's side has the machine to itself too;
#   kubeadm  as a careful operator scripts it: kubelet, kubeadm, kubectl and a kubelet unit copied to every node,
#            kubeadm's kube-proxy image imported (testbed/k8s/build.sh builds it with kubeadm), `kubeadm init` on
#            the master, `kubeadm join` on the workers in parallel over SSH, no sleeps, no retries.
# Printed in one table, from "SSH answers on every server" to "every node Ready and CoreDNS Ready": each path's
# time, the bootstrapping part alone, the re-run (kos's no-op beside `kubeadm init` run again), the
# drivers' peak RSS, kos / kubeadm; then kube-bench's CIS counts (cis-1.11) on a master and a worker of each.
# The test cloud's servers are Linux namespaces, not VMs; the times are this machine's (2 cores).
# Env: KOS (default: target/release/kos, built when KOS is not set), KEEP=1 keeps the work folder.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"
bench_init vs-kubeadm
WORKERS=${1:-2}
# shellcheck source=../testbed/k8s/versions.env
. "$ROOT/testbed/k8s/versions.env"
CACHE=${KOS_K8S_CACHE:-/var/tmp/kos-k8s}
ARTIFACTS=$(KOS_K8S_KUBEADM=1 "$ROOT/testbed/k8s/build.sh" 2>"$WORK/build.log" | tail -n1) || { cat "$WORK/build.log" >&2; exit 1; }
KA=$CACHE/kubeadm-v$KUBERNETES KB=$CACHE/kube-bench
[ -x "$KA/kubeadm" ] && [ -f "$KA/kube-proxy.tar" ] && [ -x "$KB/kube-bench" ] || { echo "no kubeadm or kube-bench in $CACHE" >&2; exit 1; }
bench_home
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }

settings() { # settings CLUSTER POD_CIDR -> path
  local f=$WORK/$1/settings.yaml
  mkdir -p "$WORK/$1"
  {
    bench_settings "$1" "$2"
    echo "kubelet: {eviction_hard: {imagefs.available: 2%, nodefs.available: 2%}}"   # the test bed's disk is the host's
    echo "nodes:"
    echo "  - {name: m1, role: master}"
    for i in $(seq 1 "$WORKERS"); do echo "  - {name: w$i, role: worker}"; done
  } >"$f"
  echo "$f"
}
SK=$(settings vk 10.58.0.0/16) SA=$(settings va 10.59.0.0/16)
CLUSTERS=("$SK" "$SA")
NODES=(m1 $(for i in $(seq 1 "$WORKERS"); do echo "w$i"; done))

# The cloud's part, the same for both (not timed): servers, ports, routes; then SSH on every server.
for s in "$SK" "$SA"; do "$KOS" up -q --only instances,routes -f "$s"; done
ip_of() { "$KOS" status -o json -f "$1" | python3 -c "import json,sys; print({n['node']: n['fixed_ip'] for n in json.load(sys.stdin)['nodes']}['$2'])"; }
declare -A IP
for c in vk va; do for n in "${NODES[@]}"; do IP[$c-$n]=$(ip_of "$WORK/$c/settings.yaml" "$n"); done; done
SSHO=(-i "$TC_HOME/demo-key.pem" -o StrictHostKeyChecking=no -o UserKnownHostsFile="$WORK/known_hosts" -o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR)
on() { local host=$1; shift; ssh "${SSHO[@]}" "debian@${IP[$host]}" "$@"; }
for k in "${!IP[@]}"; do until on "$k" true 2>/dev/null; do sleep 1; done; done
echo "servers answer SSH: ${#IP[@]} ($(date +%T))"
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# kube-bench on a master and a worker: kos's cluster with kos's paths (testbed/k8s/kube-bench/kos.yaml), kubeadm's
# with kube-bench's own settings (its defaults are kubeadm's paths).
cp -r "$KB/." "$WORK/kb-upstream"; printf -- '---\n' >"$WORK/kb-upstream/cfg/cis-1.11/config.yaml"
MT=master,etcd,controlplane,node,policies
kb() { # kb CLUSTER NODE TARGETS CFG -> "pass fail warn FAILs"
  on "$1-$2" "sudo rm -rf /opt/kb && sudo mkdir -p /opt/kb && sudo tar -C /opt/kb -xzf -" < <(tar -C "$4" -czf - kube-bench cfg)
  on "$1-$2" "sudo /opt/kb/kube-bench run --config-dir /opt/kb/cfg --benchmark cis-1.11 --targets $3 --json 2>/dev/null" |
    python3 -c "
import json,sys
r=json.load(sys.stdin)['Controls']
c=lambda k: sum(x['total_'+k] for x in r)
fails=[t['test_number'] for x in r for g in x['tests'] for t in g['results'] if t['status']=='FAIL']
print(c('pass'), c('fail'), c('warn'), ','.join(fails) or '-')"
}
judge() { # judge CLUSTER: a line per node (its master, its first worker) into kube-bench.txt
  local c=$1 n t cfg=$KB p f w ids
  [ "$c" = va ] && cfg=$WORK/kb-upstream
  for n in m1 w1; do
    t=node; [ "$n" = m1 ] && t=$MT
    read -r p f w ids < <(kb "$c" "$n" "$t" "$cfg")
    printf '%-8s %-14s %4s %4s %4s  %s\n' "$([ "$c" = vk ] && echo kos || echo kubeadm)" "$n" "$p" "$f" "$w" "$ids" >>"$WORK/kube-bench.txt"
  done
}

# --- kos: the runtime, images and pod network first (as for kubeadm below), then `kos up` does the rest.
t0=$(now)
$TIME -f "%M" -o "$WORK/kos0.rss" "$KOS" up -q --only runtime,network -f "$SK"
t1=$(now)
$TIME -f "%M" -o "$WORK/kos.rss" "$KOS" up -o json -f "$SK" >"$WORK/kos-up.json" 2>"$WORK/kos-up.log" || { tail -20 "$WORK/kos-up.log" >&2; exit 1; }
t2=$(now)
kos_total=$(secs "$t0" "$t2") kos_boot=$(secs "$t1" "$t2")
t0=$(now); $TIME -f "%M" -o "$WORK/kos-noop.rss" "$KOS" up -q -f "$SK" >/dev/null 2>&1; kos_noop=$(secs "$t0" "$(now)")
judge vk
# kos's cluster goes before kubeadm's side starts: each has the machine to itself.
"$KOS" destroy --yes -q -f "$SK" >/dev/null; CLUSTERS=("$SA")

# --- kubeadm: the same runtime, images and pod network from kos, then kubeadm.
t0=$(now)
"$KOS" up -q --only runtime,network -f "$SA"
t1=$(now)
CG=$(on va-m1 stat -fc %T /sys/fs/cgroup)
cat >"$WORK/kubelet.service" <<'EOF'
[Unit]
Description=kubelet (started by kubeadm)
Wants=network-online.target containerd.service
After=network-online.target containerd.service kos-pod-network.service
[Service]
ExecStart=/usr/local/bin/kubelet
Restart=always
RestartSec=5
[Install]
WantedBy=multi-user.target
EOF
# kubeadm's flags for the kubelet, as kubeadm's documentation gives the drop-in (our own file).
cat >"$WORK/10-kubeadm.conf" <<'EOF'
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
ExecStart=
ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS
EOF
prepare() { # prepare NODE: binaries, units, kubeadm's kube-proxy image
  local n=$1 f
  for f in "$KA/kubeadm" "$ARTIFACTS/bin/kubelet" "$ARTIFACTS/bin/kubectl" "$TIME"; do
    on "$n" "sudo tee /usr/local/bin/${f##*/} >/dev/null && sudo chmod 755 /usr/local/bin/${f##*/}" <"$f"
  done
  on "$n" "sudo mkdir -p /etc/systemd/system/kubelet.service.d && sudo tee /etc/systemd/system/kubelet.service >/dev/null" <"$WORK/kubelet.service"
  on "$n" "sudo tee /etc/systemd/system/kubelet.service.d/10-kubeadm.conf >/dev/null && sudo systemctl daemon-reload && sudo systemctl enable -q kubelet" <"$WORK/10-kubeadm.conf"
  on "$n" "sudo ctr -n k8s.io images import - >/dev/null 2>&1" <"$KA/kube-proxy.tar"
}
pids=(); for n in "${NODES[@]}"; do prepare "va-$n" & pids+=($!); done; for p in "${pids[@]}"; do wait "$p"; done
M=${IP[va-m1]}
{
  cat <<EOF
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: $M}
nodeRegistration:
  name: m1
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs: [{name: node-ip, value: $M}]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v$KUBERNETES
controlPlaneEndpoint: $M:6443
networking: {podSubnet: 10.59.0.0/16}
etcd: {local: {imageTag: $ETCD-0}}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
evictionHard: {imagefs.available: 2%, nodefs.available: 2%}
EOF
  # The test bed's nodes (as kos finds and handles them): cgroup v1 on this machine, and a conntrack table
  # size kube-proxy may not change.
  [ "$CG" = tmpfs ] && echo "failCgroupV1: false"
  cat <<EOF
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clusterCIDR: 10.59.0.0/16
conntrack: {maxPerCore: 0, min: 0}
EOF
} >"$WORK/kubeadm.yaml"
IGNORE=--ignore-preflight-errors=SystemVerification   # cgroup v1 and no kernel config in the test bed's nodes
on va-m1 "sudo tee /root/kubeadm.yaml >/dev/null" <"$WORK/kubeadm.yaml"
on va-m1 "sudo /usr/local/bin/time -f %M -o /root/kubeadm.rss kubeadm init --config /root/kubeadm.yaml $IGNORE" >"$WORK/kubeadm-init.log" 2>&1 ||
  { tail -30 "$WORK/kubeadm-init.log" >&2; exit 1; }
on va-m1 "sudo cat /etc/kubernetes/admin.conf" >"$WORK/kubeadm-admin.conf"
JOIN=$(on va-m1 "sudo kubeadm token create --print-join-command")
pids=(); for n in "${NODES[@]:1}"; do
  on "va-$n" "sudo /usr/local/bin/time -f %M -o /root/kubeadm.rss $JOIN --node-name $n $IGNORE" >"$WORK/kubeadm-join-$n.log" 2>&1 & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { cat "$WORK"/kubeadm-join-*.log >&2; exit 1; }; done
K=(kubectl --kubeconfig "$WORK/kubeadm-admin.conf")
PATH=$ARTIFACTS/bin:$PATH
"${K[@]}" wait --for=condition=Ready nodes --all --timeout=300s >/dev/null
"${K[@]}" -n kube-system rollout status deploy/coredns --timeout=300s >/dev/null
t2=$(now)
ka_total=$(secs "$t0" "$t2") ka_boot=$(secs "$t1" "$t2")
LOAD2=$(cut -d' ' -f1-3 /proc/loadavg)
ka_rss=$(for n in "${NODES[@]}"; do on "va-$n" "sudo cat /root/kubeadm.rss"; done | sort -n | tail -1)   # init's or a join's, the largest
kos_rss=$(cat "$WORK/kos0.rss" "$WORK/kos.rss" | sort -n | tail -1)
# The re-run: kubeadm init and join again, as a script would on its second run.
t0=$(now); on va-m1 "sudo kubeadm init --config /root/kubeadm.yaml $IGNORE" >"$WORK/kubeadm-init-2.log" 2>&1 && again=accepted || again=refused
ka_rerun=$(secs "$t0" "$(now)")
why=$(grep -m1 -E '^\s*\[ERROR' "$WORK/kubeadm-init-2.log" | sed 's/^\s*//' || true)
judge va

echo
echo "kos $("$KOS" --version | head -1) beside kubeadm v$KUBERNETES: 1 master + $WORKERS workers each, the same servers, artifacts and pod network, one after the other; load when SSH answered: $LOAD, when kubeadm's side was Ready: $LOAD2"
printf '%-8s %18s %16s %24s %14s\n' "" "SSH → all Ready (s)" "bootstrap (s)" "re-run" "driver RSS MiB"
# bootstrap: after kos's runtime and network phases (the same for both), until every node and CoreDNS are Ready.
printf '%-8s %18s %16s %24s %14s\n' kos "$kos_total" "$kos_boot" "$kos_noop s (no-op)" "$(( kos_rss / 1024 ))"
printf '%-8s %18s %16s %24s %14s\n' kubeadm "$ka_total" "$ka_boot" "$ka_rerun s ($again)" "$(( ka_rss / 1024 ))"
python3 -c "import sys; a = [float(x) for x in sys.argv[1:]]; print(f'kos / kubeadm: {a[0] / a[1]:.2f} (SSH → Ready), {a[2] / a[3]:.2f} (bootstrap)')" "$kos_total" "$ka_total" "$kos_boot" "$ka_boot"
[ -n "$why" ] && echo "kubeadm init, second run: $why"
echo
echo "kube-bench cis-1.11     PASS FAIL WARN  FAILs"
cat "$WORK/kube-bench.txt"
