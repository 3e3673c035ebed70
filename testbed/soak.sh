#!/usr/bin/env bash
# soak.sh N [NEXTEST-FILTER] -- run the real-infrastructure tests N times in a row, each time on a
# test bed started and torn down for that run alone, with no retry, and print per test how often
# it passed and failed, and the leaks each teardown reported. A flake shows as a test that both
# passed and failed; a leak as a teardown line `LEAK: ...`.
#
#   testbed/soak.sh 10                                     the test bed's and the end-to-end tests
#   testbed/soak.sh 3 'test(/^testbed_nodes/)'             a subset (nextest's filter language)
#   SOAK_PREFIX=ksoakb testbed/soak.sh 5                   a second soak beside the first (its own test beds)
#   testbed/soak.sh --report DIR...                        the table of the finished runs of one or more
#                                                          soaks' folders (several soaks side by side, or one
#                                                          stopped early)
#
# Needs what ./test.sh installs (run it once first). The tests are built once, first; do not edit the
# sources while it runs (nextest would rebuild them inside the test bed, offline). Output: a table on stdout; every run's log in
# /var/tmp/kos-soak/<date>/run-K.log, the consoles of its nodes in run-K-consoles/. The machine's load
# before each run is in the table's notes.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

# report DIR...: per test, passes and failures over every finished run (its test bed's
# teardown logged) in the folders; then each run's note and one summary line. Exit 0 only
# with no failure and no leak.
report() {
  local -A pass=() fail=()
  local runs=0 leaks=0 log verdict name n
  local notes=()
  for log in $(for d in "$@"; do ls "$d"/run-*.log 2>/dev/null | sort -V; done); do
    grep -q '\] test bed down (' "$log" || continue   # still running, or cut short
    runs=$(( runs + 1 ))
    while read -r verdict name; do
      if [[ $verdict == PASS ]]; then pass[$name]=$(( ${pass[$name]:-0} + 1 )); else fail[$name]=$(( ${fail[$name]:-0} + 1 )); fi
    done < <(sed -nE 's/^ *(PASS|FAIL|TIMEOUT|SIG[A-Z]+|ABORT) \[[^]]*\] (\([^)]*\) )?kos::it ([^ ]+).*/\1 \3/p' "$log" | sort -u)
    # A run whose tests did not even start (a build error, a test bed that did not come up) fails too.
    if ! grep -qE '^ *(PASS|FAIL|TIMEOUT|SIG[A-Z]+|ABORT) \[' "$log"; then
      fail["(run: no test started)"]=$(( ${fail["(run: no test started)"]:-0} + 1 ))
    fi
    n=$(grep -c '^LEAK:' "$log")
    leaks=$(( leaks + n ))
    notes+=("$(basename "$(dirname "$log")")/$(basename "$log" .log): $(cat "${log%.log}.note" 2>/dev/null || echo "no note"), $n leak line(s)")
  done
  printf '%-90s %6s %6s\n' TEST PASSED FAILED
  local names failures=0
  mapfile -t names < <(printf '%s\n' "${!pass[@]}" "${!fail[@]}" | grep -v '^$' | sort -u)
  for name in "${names[@]}"; do
    printf '%-90s %6d %6d\n' "$name" "${pass[$name]:-0}" "${fail[$name]:-0}"
    failures=$(( failures + ${fail[$name]:-0} ))
  done
  echo
  printf '%s\n' "${notes[@]}"
  echo "soak: $runs finished run(s) in $*, $(nproc) cores: ${#names[@]} tests, $failures failure(s), 0 retries, $leaks leak line(s)"
  (( runs > 0 && failures == 0 && leaks == 0 ))
}

if [[ ${1:-} == --report ]]; then
  shift
  report "$@"
  exit
fi

N=${1:?usage: testbed/soak.sh N [NEXTEST-FILTER] | --report DIR...}
FILTER=${2:-'package(kos) & (test(/^testbed_/) | test(/^cloud_/))'}
# Its own prefix, so a soak never meets ./test.sh's test bed (kos) or a try-out (ktry).
PREFIX=${SOAK_PREFIX:-ksoak}
OUT=/var/tmp/kos-soak/$(date +%Y%m%d-%H%M%S)-$PREFIX
mkdir -p "$OUT"
export PATH="${KOS_TOOLS:-/opt/kos-test-tools}/bin:$PATH" CI=1
KOS_TEST_ARTIFACTS=$(testbed/k8s/build.sh | tail -n1)
KOS_TEST_ARTIFACTS_PREVIOUS=$(testbed/k8s/build.sh --previous | tail -n1)
export KOS_TEST_ARTIFACTS KOS_TEST_ARTIFACTS_PREVIOUS
cargo nextest run -p kos --test it --no-run >"$OUT/build.log" 2>&1 || { echo "build failed: $OUT/build.log" >&2; exit 1; }
echo "$(git log -1 --format='%h %s' | cut -c1-100); filter: $FILTER" >"$OUT/commit"

for k in $(seq 1 "$N"); do
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  t=$(date +%s)
  TB_PREFIX=$PREFIX CARGO_NET_OFFLINE=true testbed/with-testbed.sh \
    cargo nextest run -p kos --test it --profile ci --retries 0 --no-fail-fast -E "$FILTER" >"$OUT/run-$k.log" 2>&1
  rc=$?
  # The consoles of the run's removed nodes (systemd's boot and shutdown), for a failure's post-mortem.
  cp -r "${TB_RUN_ROOT:-/var/tmp/kos-testbed-run}/$PREFIX/gone" "$OUT/run-$k-consoles" 2>/dev/null || true
  echo "exit $rc, $(( $(date +%s) - t )) s, load before: $load" >"$OUT/run-$k.note"
  echo "$PREFIX run $k of $N: $(cat "$OUT/run-$k.note"), $(grep -c '^LEAK:' "$OUT/run-$k.log") leak line(s)" >&2
done

report "$OUT"
