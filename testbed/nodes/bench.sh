#!/bin/bash
# bench.sh [--base] [N...] -- figures of the test nodes (default N = 1 5 10): time from server create
# to SSH answering, memory per node, delete time (bench.py), and the node base's build time.
#   testbed/with-testbed.sh testbed/nodes/bench.sh          # with the whole test bed around it
# --base: also build the base from scratch into a temporary cache to time it (downloads ~110 MB);
#         without it, the time of the last build of $TB_CACHE is printed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
base=0; [[ ${1:-} == --base ]] && { base=1; shift; }
[[ ${KOS_TEST_NODES:-} == 1 ]] || die "no test bed: run testbed/with-testbed.sh testbed/nodes/bench.sh"
echo "== test nodes: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)"
if [[ $base == 1 ]]; then
  scratch=$(mktemp -d /var/tmp/kos-bench-base.XXXXXX)
  TB_CACHE=$scratch "$TB_NODES_DIR/build-base.sh" >/dev/null 2>&1 || die "base build failed (log in $scratch)"
  echo "base build from scratch: $(cat "$scratch/build-seconds") s (debootstrap + repo download + customising)"
  rm -rf "$scratch"
fi
echo "base: $(du -sh "$TB_CACHE/base" | cut -f1), repo $(du -sh "$TB_CACHE/repo" | cut -f1);" \
     "last build of $TB_CACHE took $(cat "$TB_CACHE/build-seconds" 2>/dev/null || echo '?') s"
(( $# )) || set -- 1 5 10
/usr/bin/python3 "$TB_NODES_DIR/bench.py" "$@"
