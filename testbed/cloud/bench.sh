#!/bin/bash
# Benchmark of the test cloud (not a test): install time, cold start time, idempotent second
# start, memory of the whole set (PSS, idle and after the smoke test), smoke test, stop, disk.
# It starts its own cloud in $TC_HOME (default /tmp/kos-test-cloud-bench) and stops it at the
# end; the ports must be free in this network namespace.
# Usage: [TC_HOME=DIR] testbed/cloud/bench.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export TC_HOME=${TC_HOME:-/tmp/kos-test-cloud-bench}
. "$HERE/lib.sh"
[ -e "$UP_MARK" ] && { echo "a test cloud is up in $TC_HOME: the benchmark wants a cold start" >&2; exit 1; }

declare -A FIG
timed() { # timed KEY CMD...: run CMD (output to $TC_HOME.bench.log), seconds in FIG[KEY]
  local key=$1 s; shift; s=$(ts)
  "$@" >> "$TC_HOME.bench.log" 2>&1 || { echo "$* failed; see $TC_HOME.bench.log" >&2; tail -25 "$TC_HOME.bench.log" >&2; exit 1; }
  FIG[$key]=$(awk -v a="$(ts)" -v b="$s" 'BEGIN{printf "%.1f s", a-b}')
}
pss() { "$HERE/mem.sh" | awk '$1 == "TOTAL" {printf "%d procs, PSS %.0f MiB (RSS %.0f MiB)", $2, $8, $5}'; }
: > "$TC_HOME.bench.log"
trap '"$HERE/down.sh" >> "$TC_HOME.bench.log" 2>&1' EXIT

timed install "$HERE/install.sh"
if grep -q "already installed" "$TC_HOME.bench.log"; then FIG[install]+=" (all installed: a no-op)"; fi
timed up "$HERE/up.sh"
timed up_again "$HERE/up.sh"
FIG[mem_idle]=$(pss)
timed smoke "$HERE/smoke.sh"
FIG[mem_smoke]=$(pss)
FIG[disk]=$(du -sh "$TC_HOME" | cut -f1)
trap - EXIT
timed down "$HERE/down.sh"

printf '%-40s %s\n' \
  "install.sh" "${FIG[install]}" \
  "up.sh, cold (empty TC_HOME to seeded)" "${FIG[up]}" \
  "up.sh, again while up" "${FIG[up_again]}" \
  "memory, idle after start: procs, PSS" "${FIG[mem_idle]}" \
  "smoke.sh" "${FIG[smoke]}" \
  "memory after the smoke test" "${FIG[mem_smoke]}" \
  "down.sh" "${FIG[down]}" \
  "disk of TC_HOME" "${FIG[disk]}" \
  "machine" "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
