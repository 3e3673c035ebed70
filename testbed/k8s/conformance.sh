#!/bin/bash
# conformance.sh --kubeconfig FILE [--set ci|full] [--report DIR] [--context NAME] [--procs N] [--timeout DUR]
#                [--registry IP] [--dry-run] [-- E2E_ARG...]
# Runs the upstream Kubernetes e2e suite (e2e.test, built by build.sh at the cluster's version) against a cluster,
# from a machine that reaches its API server (the tests: inside the test bed's deployer network namespace, where
# nothing reaches the internet), then prints one line
#     conformance (SET): N passed, M failed, K skipped
# (from the JUnit report; K: selected specs that skipped themselves at run time, e.g. another provider's) and each
# failed spec. Exit 0 only when every failed spec is listed in conformance-known-failures.txt next to this script.
#
#   --set ci     routed pod networking, Services, DNS, HostPort and admission webhooks (the default; ~15-20 min on
#                2 cores, 1 master + 3 workers): [sig-network] Networking Granular Checks, [sig-network] DNS,
#                [sig-network] Services ... [Conformance], HostPort, [sig-api-machinery] AdmissionWebhook ...
#                [Conformance]; without [Serial], [Disruptive], [Flaky], [Slow], [Feature:*] and what needs a
#                cloud provider ([Provider:*]: those skip themselves, counted in K).
#   --set full   every [Conformance] spec but [Serial] ones (outside CI; the test image folder has every image
#                they name).
#   --report DIR JUnit (junit_01.xml) and the e2e log (e2e.log); default a new folder under /tmp.
#   --procs N    run N specs at once through the ginkgo CLI (default 4: most specs wait on pods and the network,
#                not on the CPU); 1 runs e2e.test itself, one spec at a time.
#   --timeout    the suite's time limit (--ginkgo.timeout; default 60m for ci, 8h for full).
#   --registry IP  serve the test image folder as registry.k8s.io on IP:443 (an address of this machine that the
#                nodes reach; on the test bed the deployer's, deployer_ip in $TB_RUN/sandbox.env) for the run, for
#                the specs whose pods pull with imagePullPolicy Always (ImageVolume, Projected PodCertificate mTLS):
#                the kubelet asks the registry even for a loaded image. registry.py serves the archives; a
#                privileged DaemonSet (namespace kos-conformance-registry) adds a hosts entry and the runner's CA
#                ($KOS_K8S_CACHE/conformance-registry-ca, made once) to every node, and takes both away when the
#                namespace is deleted at the end.
#   --dry-run    list the specs the set selects (no cluster needed but the kubeconfig) and stop.
#
# Images: the suite's pods name their images by tag (registry.k8s.io/e2e-test-images/agnhost:2.66.1, ...), which the
# kubelet pulls only when missing (IfNotPresent, the default for tags), and the framework pre-pulls nothing
# (--prepull-images=false, its default). kos loads the test image folder (build.sh's sibling of the artifact set,
# artifacts.extra_images) on every node; before running, this script checks that every node reports the images
# the set needs, so a missing image fails at once instead of as pod start timeouts against an unreachable registry.
#
# Env: KOS_K8S_CACHE (default /var/tmp/kos-k8s): where build.sh put e2e-v<version>/bin/{e2e.test,ginkgo},
#      artifacts-v<version>/bin/kubectl and test-images-v<version>/.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$HERE/versions.env"
CACHE=${KOS_K8S_CACHE:-/var/tmp/kos-k8s}
E2E_BIN=$CACHE/e2e-v$KUBERNETES/bin
KNOWN=$HERE/conformance-known-failures.txt
usage() { sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
die() { echo "conformance: $*" >&2; exit 2; }

kubeconfig="" set=ci report="" context="" procs=4 timeout="" registry="" dry=0 extra=()
while (($#)); do
  case $1 in
    --kubeconfig) kubeconfig=$2; shift 2 ;;
    --set) set=$2; shift 2 ;;
    --report) report=$2; shift 2 ;;
    --context) context=$2; shift 2 ;;
    --procs) procs=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --registry) registry=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "conformance: unknown argument $1" >&2; usage ;;
  esac
done
[[ -n $kubeconfig ]] || usage
[[ -r $kubeconfig ]] || die "cannot read the kubeconfig $kubeconfig"
[[ -x $E2E_BIN/e2e.test ]] || die "no $E2E_BIN/e2e.test: run testbed/k8s/build.sh first"
KUBECTL=$CACHE/artifacts-v$KUBERNETES/bin/kubectl
[[ -x $KUBECTL ]] || KUBECTL=$(command -v kubectl) || die "no kubectl ($CACHE/artifacts-v$KUBERNETES/bin/kubectl or on PATH)"

# Regular expressions over the spec's full text (ginkgo's --focus/--skip).
SKIP_ALWAYS='\[Serial\]|\[Disruptive\]|\[Flaky\]'
case $set in
  ci)
    focus='\[sig-network\] Networking Granular Checks|\[sig-network\] DNS|\[sig-network\] Services .*\[Conformance\]|HostPort|\[sig-api-machinery\] AdmissionWebhook .*\[Conformance\]'
    skip="$SKIP_ALWAYS|\\[Slow\\]|\\[Feature:[^]]*\\]|\\[Alpha\\]|\\[Beta\\]"
    # The images the ci set's pods run (test/utils/image/manifest.go's names): checked on every node first.
    images=(agnhost busybox glibc-dns-testing)
    timeout=${timeout:-60m} ;;
  full)
    focus='\[Conformance\]'
    skip=$SKIP_ALWAYS
    images=(agnhost busybox glibc-dns-testing nginx kitten nautilus nonroot nonewprivs sample-apiserver etcd)
    timeout=${timeout:-8h} ;;
  *) die "--set must be ci or full" ;;
esac
report=${report:-$(mktemp -d /tmp/conformance-"$set".XXXXXX)}
mkdir -p "$report"
report=$(cd "$report" && pwd)

kc=(--kubeconfig "$kubeconfig"); [[ -z $context ]] || kc+=(--context "$context")
e2e_args=("${kc[@]}" --provider=skeleton --report-dir="$report" --kubectl-path="$KUBECTL"
  --prepull-images=false --disable-log-dump --dump-logs-on-failure=false "${extra[@]}")

if ((dry)); then
  "$E2E_BIN/e2e.test" "${e2e_args[@]}" --ginkgo.dry-run --ginkgo.v --ginkgo.no-color \
    --ginkgo.focus="$focus" --ginkgo.skip="$skip" 2>&1 | grep -E '^\[It\]|^  \[It\]|^•|Ran [0-9]+ of' || true
  exit 0
fi

# Every schedulable node must report the set's images (by the names the suite uses), or nothing would start.
# The names: those of the test image folder's archives (build.sh's, at the names --list-images prints) of the
# images the set needs.
TI=$CACHE/test-images-v$KUBERNETES
[[ -f $TI/SHA256SUMS ]] || die "no test image folder $TI: run testbed/k8s/build.sh first"
mapfile -t names < <(python3 - "$TI" "${images[@]}" <<'PY'
import json, os, sys, tarfile
folder, wanted = sys.argv[1], sys.argv[2:]
for line in open(os.path.join(folder, "SHA256SUMS")):
    with tarfile.open(os.path.join(folder, line.split()[1])) as t:
        for m in json.load(t.extractfile("index.json"))["manifests"]:
            name = m["annotations"]["io.containerd.image.name"]
            if name.rsplit(":", 1)[0].rsplit("/", 1)[-1] in wanted:
                print(name)
PY
)
# (The kubelet reports a newly imported image within a minute or so: wait up to 3 minutes.)
lacking() { "$KUBECTL" "${kc[@]}" get nodes -o json | python3 -c '
import json, sys
want = sys.argv[1:]
for n in json.load(sys.stdin)["items"]:
    if any(t.get("effect") == "NoSchedule" for t in n["spec"].get("taints", [])):
        continue
    have = {name for i in n["status"].get("images") or [] for name in i.get("names") or []}
    lacking = [w for w in want if w not in have]
    if lacking:
        print("%s lacks %s" % (n["metadata"]["name"], " ".join(lacking)))
' "${names[@]}"; }
for _ in $(seq 36); do missing=$(lacking); [[ -n $missing ]] || break; sleep 5; done
[[ -z $missing ]] || die "images not loaded (no registry is reachable; load testbed/k8s/build.sh's test image folder, artifacts.extra_images):
$missing"

# --registry: registry.k8s.io served from here for the run (see the header), on every node through a DaemonSet.
if [[ -n $registry ]]; then
  reg=$report/registry ca=$CACHE/conformance-registry-ca
  mkdir -p "$reg"
  # One CA for every run, made once: containerd reads the trust store at its first TLS connection and keeps what it
  # read, so a node that trusted one run's CA would refuse the next run's ("x509: certificate signed by unknown
  # authority": seen).
  if [[ ! -f $ca/ca.crt ]]; then
    mkdir -p "$ca.tmp"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$ca.tmp/ca.key" -out "$ca.tmp/ca.crt" -days 3650 \
      -subj "/CN=kos conformance registry CA" 2>/dev/null
    mv "$ca.tmp" "$ca"
  fi
  cp "$ca/ca.crt" "$reg/ca.crt"
  openssl req -newkey rsa:2048 -nodes -keyout "$reg/tls.key" -out "$reg/tls.csr" -subj "/CN=registry.k8s.io" 2>/dev/null
  printf 'subjectAltName=DNS:registry.k8s.io\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$reg/ext"
  openssl x509 -req -in "$reg/tls.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" -CAcreateserial -CAserial "$reg/ca.srl" \
    -out "$reg/tls.crt" -days 2 -extfile "$reg/ext" 2>/dev/null
  python3 "$HERE/registry.py" --listen "$registry:443" --cert "$reg/tls.crt" --key "$reg/tls.key" "$TI" \
    >"$reg/registry.log" 2>&1 &
  reg_pid=$!
  registry_down() {
    "$KUBECTL" "${kc[@]}" delete namespace kos-conformance-registry --wait --timeout=90s >/dev/null 2>&1 || true
    kill "$reg_pid" 2>/dev/null || true
  }
  trap registry_down EXIT
  for _ in $(seq 30); do
    curl -sf --cacert "$reg/ca.crt" --resolve "registry.k8s.io:443:$registry" https://registry.k8s.io/v2/ >/dev/null && break
    kill -0 "$reg_pid" 2>/dev/null || die "registry.py ended: $(tail -3 "$reg/registry.log")"
    sleep 1
  done
  busybox=$(printf '%s\n' "${names[@]}" | grep -m1 '/busybox:') || die "no busybox image in $TI"
  "$KUBECTL" "${kc[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: kos-conformance-registry}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: registry, namespace: kos-conformance-registry}
data:
  ip: "$registry"
  ca.crt: |
$(sed 's/^/    /' "$reg/ca.crt")
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: registry-k8s-io, namespace: kos-conformance-registry}
spec:
  selector: {matchLabels: {app: kos-conformance-registry}}
  template:
    metadata: {labels: {app: kos-conformance-registry}}
    spec:
      hostPID: true
      tolerations: [{operator: Exists}]
      terminationGracePeriodSeconds: 30
      containers:
      - name: node
        image: $busybox
        imagePullPolicy: IfNotPresent
        securityContext: {privileged: true}
        env:
        - {name: IP, valueFrom: {configMapKeyRef: {name: registry, key: ip}}}
        - {name: CA, valueFrom: {configMapKeyRef: {name: registry, key: ca.crt}}}
        readinessProbe: {exec: {command: [cat, /tmp/ready]}, periodSeconds: 2}
        command:
        - sh
        - -c
        - |
          set -e
          # In the node's mount namespace: the CA in its trust store, registry.k8s.io in /etc/hosts (same inode).
          node() { nsenter -t 1 -m -- sh -c "\$1"; }
          hosts='grep -v " # kos-conformance-registry\$" /etc/hosts > /etc/hosts.kos-tmp || true'
          node "printf '%s\\n' \"\$CA\" > /usr/local/share/ca-certificates/kos-conformance-registry.crt
                update-ca-certificates > /dev/null
                \$hosts; echo \"\$IP registry.k8s.io # kos-conformance-registry\" >> /etc/hosts.kos-tmp
                cat /etc/hosts.kos-tmp > /etc/hosts; rm -f /etc/hosts.kos-tmp"
          touch /tmp/ready
          trap 'node "rm -f /usr/local/share/ca-certificates/kos-conformance-registry.crt
                      update-ca-certificates --fresh > /dev/null
                      \$hosts; cat /etc/hosts.kos-tmp > /etc/hosts; rm -f /etc/hosts.kos-tmp"; exit 0' TERM
          while :; do sleep 3600 & wait \$!; done
EOF
  "$KUBECTL" "${kc[@]}" -n kos-conformance-registry rollout status daemonset/registry-k8s-io --timeout=120s >/dev/null ||
    die "the registry DaemonSet did not become ready: $("$KUBECTL" "${kc[@]}" -n kos-conformance-registry get pods -o wide)"
  echo "conformance: registry.k8s.io served from https://$registry (log $reg/registry.log)" >&2
fi

# --num-nodes: the framework counts the schedulable nodes only in ginkgo's first process; the others would keep
# -1 and skip every spec that "Requires at least 2 nodes" (upstream's hack/ginkgo-e2e.sh passes it too).
num=$("$KUBECTL" "${kc[@]}" get nodes -o json | python3 -c '
import json, sys
print(sum(1 for n in json.load(sys.stdin)["items"]    # not a passing taint (disk pressure on a shared disk): the role
          if not any(t["key"].startswith("node-role.kubernetes.io/") for t in n["spec"].get("taints") or [])))')
e2e_args+=(--num-nodes="$num")

echo "conformance ($set): e2e.test v$KUBERNETES, $num schedulable nodes, report in $report" >&2
t0=$(date +%s)
rc=0
if ((procs > 1)); then
  "$E2E_BIN/ginkgo" --procs="$procs" --no-color --timeout="$timeout" --focus="$focus" --skip="$skip" \
    "$E2E_BIN/e2e.test" -- "${e2e_args[@]}" >"$report/e2e.log" 2>&1 || rc=$?
else
  "$E2E_BIN/e2e.test" "${e2e_args[@]}" --ginkgo.no-color --ginkgo.timeout="$timeout" \
    --ginkgo.focus="$focus" --ginkgo.skip="$skip" >"$report/e2e.log" 2>&1 || rc=$?
fi
secs=$(( $(date +%s) - t0 ))
[[ -f $report/junit_01.xml ]] || { tail -30 "$report/e2e.log" >&2; die "e2e.test (exit $rc) wrote no JUnit report: see $report/e2e.log"; }

# Images gone during the run (the kubelet's image garbage collection when the node's disk passes its high
# threshold; on the test bed the nodes share the host's disk) show as pull failures: say so.
gone=$(lacking || true)
[[ -z $gone ]] || echo "conformance: WARNING: images went missing during the run (the kubelet's image garbage collection?):
$gone" >&2

python3 - "$report/junit_01.xml" "$KNOWN" "$set" "$secs" <<'PY'
import re, sys, xml.etree.ElementTree as ET
junit, known_file, set_, secs = sys.argv[1:]
known = {}
for line in open(known_file):
    line = line.strip()
    if line and not line.startswith("#"):
        spec, _, reason = line.rpartition(" | ")
        known[spec.strip()] = reason.strip()
passed, failed, skipped = 0, [], 0
for tc in ET.parse(junit).getroot().iter("testcase"):
    name = tc.get("name", "")
    spec = re.sub(r"^\[It\] ", "", name)
    spec = re.sub(r"\s+", " ", spec).strip()
    bad = tc.find("failure") is not None or tc.find("error") is not None
    if not name.startswith("[It] "):          # suite-level nodes: count only when they fail
        if bad:
            failed.append(spec)
        continue
    if bad:
        failed.append(spec)
    elif tc.find("skipped") is not None:
        if tc.find("skipped").get("message", "") != "skipped":   # not filtered out: skipped itself at run time
            skipped += 1
    else:
        passed += 1
print("conformance (%s): %d passed, %d failed, %d skipped (%d min %d s)" % (set_, passed, len(failed), skipped, int(secs) // 60, int(secs) % 60))
unknown = 0
for f in failed:
    if f in known:
        print("  failed (known: %s): %s" % (known[f], f))
    else:
        unknown += 1
        print("  FAILED: %s" % f)
sys.exit(1 if unknown else 0)
PY
