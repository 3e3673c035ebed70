#!/usr/bin/env bash
# soak.sh N [NEXTEST-FILTER] -- run the real-infrastructure tests N times in a row, each time on a
# test bed started and torn down for that run alone, with no retry, and print per test how often
# it passed and failed, and the leaks each teardown reported. A flake shows as a test that both
# passed and failed; a leak as a teardown line `LEAK: ...`.
#
#   testbed/soak.sh 10                                     the test bed's and the end-to-end tests
#   testbed/soak.sh 3 'test(/^testbed_nodes/)'             a subset (nextest's filter language)
#   SOAK_PREFIX=ksoakb testbed/soak.sh 5                   a second soak beside the first (its own test beds)
#
# Needs what ./test.sh installs (run it once first). The tests are built once, first; do not edit the
# sources while it runs (nextest would rebuild them inside the test bed, offline). Output: a table on stdout; every run's log in
# /var/tmp/kos-soak/<date>/run-K.log, the consoles of its nodes in run-K-consoles/. The machine's load
# before each run is in the table's notes.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${1:?usage: testbed/soak.sh N [NEXTEST-FILTER]}
FILTER=${2:-'package(kos) & (test(/^testbed_/) | test(/^cloud_/))'}
# Its own prefix, so a soak never meets ./test.sh's test bed (kos) or a try-out (ktry).
PREFIX=${SOAK_PREFIX:-ksoak}
OUT=/var/tmp/kos-soak/$(date +%Y%m%d-%H%M%S)-$PREFIX
mkdir -p "$OUT"
export PATH="${KOS_TOOLS:-/opt/kos-test-tools}/bin:$PATH" CI=1
KOS_TEST_ARTIFACTS=$(testbed/k8s/build.sh | tail -n1)
export KOS_TEST_ARTIFACTS
cargo nextest run -p kos --test it --no-run >"$OUT/build.log" 2>&1 || { echo "build failed: $OUT/build.log" >&2; exit 1; }

declare -A pass fail
leaks=0; notes=()
for k in $(seq 1 "$N"); do
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  t=$(date +%s)
  TB_PREFIX=$PREFIX CARGO_NET_OFFLINE=true testbed/with-testbed.sh \
    cargo nextest run -p kos --test it --profile ci --retries 0 --no-fail-fast -E "$FILTER" >"$OUT/run-$k.log" 2>&1
  rc=$?
  while read -r verdict name; do
    if [[ $verdict == PASS ]]; then pass[$name]=$(( ${pass[$name]:-0} + 1 )); else fail[$name]=$(( ${fail[$name]:-0} + 1 )); fi
  done < <(sed -nE 's/^ *(PASS|FAIL|TIMEOUT|SIG[A-Z]+|ABORT) \[[^]]*\] (\([^)]*\) )?kos::it ([^ ]+).*/\1 \3/p' "$OUT/run-$k.log" | sort -u)
  # A run whose tests did not even start (a build error, a test bed that did not come up) fails too.
  if ! grep -qE '^ *(PASS|FAIL|TIMEOUT|SIG[A-Z]+|ABORT) \[' "$OUT/run-$k.log"; then
    fail["(run: no test started)"]=$(( ${fail["(run: no test started)"]:-0} + 1 ))
  fi
  # The consoles of the run's removed nodes (systemd's boot and shutdown), for a failure's post-mortem.
  cp -r "${TB_RUN_ROOT:-/var/tmp/kos-testbed-run}/$PREFIX/gone" "$OUT/run-$k-consoles" 2>/dev/null || true
  n=$(grep -c '^LEAK:' "$OUT/run-$k.log")
  leaks=$(( leaks + n ))
  notes+=("run $k: exit $rc, $(( $(date +%s) - t )) s, $n leak line(s), load before: $load")
  echo "$PREFIX run $k of $N: exit $rc, $(( $(date +%s) - t )) s, $n leak line(s)" >&2
done

printf '%-90s %6s %6s\n' TEST PASSED FAILED
mapfile -t names < <(printf '%s\n' "${!pass[@]}" "${!fail[@]}" | grep -v '^$' | sort -u)
failures=0
for name in "${names[@]}"; do
  printf '%-90s %6d %6d\n' "$name" "${pass[$name]:-0}" "${fail[$name]:-0}"
  failures=$(( failures + ${fail[$name]:-0} ))
done
echo
printf '%s\n' "${notes[@]}"
echo "soak ($PREFIX): $N run(s) on $(date -u +%Y-%m-%d), $(nproc) cores: ${#names[@]} tests, $failures failure(s), 0 retries, $leaks leak line(s); logs in $OUT"
(( failures == 0 && leaks == 0 ))
