#!/bin/bash
# conformance.sh --kubeconfig FILE [--set ci|full] [--report DIR] [--context NAME] [--procs N] [--timeout DUR]
#                [--dry-run] [-- E2E_ARG...]
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
usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
die() { echo "conformance: $*" >&2; exit 2; }

kubeconfig="" set=ci report="" context="" procs=4 timeout="" dry=0 extra=()
while (($#)); do
  case $1 in
    --kubeconfig) kubeconfig=$2; shift 2 ;;
    --set) set=$2; shift 2 ;;
    --report) report=$2; shift 2 ;;
    --context) context=$2; shift 2 ;;
    --procs) procs=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
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
