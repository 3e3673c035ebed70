#!/usr/bin/env bash
# The one test command (the README names it, .ci/run calls it). On a fresh machine it
# installs everything the tests need (idempotent: a second run skips what is there), then
# runs every test: clippy, unit, snapshot, CLI, the independent judges (kubernetes-validate,
# checkov, kubectl, openssl, a real etcd) and the real-infrastructure tests on the test bed
# (a real OpenStack on loopback + real Linux nodes in network namespaces).
#
#   ./test.sh                  everything (as root: namespaces, systemd-nspawn, apt)
#   KOS_TESTBED=0 ./test.sh    without the test bed (its tests then skip with a note;
#                              in CI, where CI is set, they would fail instead)
#   ./test.sh -E 'test(etcd)'  extra arguments go to cargo nextest
set -euo pipefail
cd "$(dirname "$0")"
t0=$(date +%s)
say() { echo "[test.sh +$(( $(date +%s) - t0 ))s] $*"; }

say "test tools (PyPI judges, etcd, openssl, cargo-nextest)"
scripts/install-test-tools.sh
export PATH="${KOS_TOOLS:-/opt/kos-test-tools}/bin:$PATH"

# Build every test binary before the test bed starts: the tests run inside the test bed's
# deployer namespace, where no registry is reachable.
say "building"
cargo nextest run --workspace --no-run
# The lints (workspace [lints]: no unwrap/expect outside tests, no print outside the
# printer, no unsafe) are part of the tests: a warning fails the run.
say "format and clippy"
cargo fmt --check
cargo clippy --workspace --all-targets -q -- -D warnings

if [ "${KOS_TESTBED:-1}" = 1 ]; then
  say "test bed packages and node base"
  testbed/cloud/install.sh
  testbed/nodes/install.sh
  # The real Kubernetes components, from their Go modules (cached by version: minutes cold,
  # seconds warm); the end-to-end tests hand this folder to kos as its air-gapped artifact set.
  say "artifact set (testbed/k8s/build.sh)"
  KOS_TEST_ARTIFACTS=$(testbed/k8s/build.sh | tail -n1)
  [ -f "$KOS_TEST_ARTIFACTS/SHA256SUMS" ] || { echo "testbed/k8s/build.sh did not name its artifact folder" >&2; exit 1; }
  # The previous minor's set, where the upgrade test starts (its own Kubernetes; minutes cold
  # after the set above, whose Go build cache it shares).
  KOS_TEST_ARTIFACTS_PREVIOUS=$(testbed/k8s/build.sh --previous | tail -n1)
  [ -f "$KOS_TEST_ARTIFACTS_PREVIOUS/SHA256SUMS" ] || { echo "testbed/k8s/build.sh --previous did not name its artifact folder" >&2; exit 1; }
  export KOS_TEST_ARTIFACTS KOS_TEST_ARTIFACTS_PREVIOUS
  say "running all tests with the test bed up"
  CARGO_NET_OFFLINE=true testbed/with-testbed.sh cargo nextest run --workspace --profile ci "$@"
else
  say "running the tests that need no test bed"
  cargo nextest run --workspace --profile ci "$@"
fi
say "done"
