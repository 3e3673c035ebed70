#!/bin/bash
# Run a command with the test cloud up, and always stop the cloud after (for CI and developers).
#   testbed/cloud/with-cloud.sh cargo nextest run ...
# The command sees $TC_HOME/env.sh: KOS_TEST_CLOUD=1, OS_CLIENT_CONFIG_FILE, OS_CLOUD (the
# project user's cloud), KOS_TEST_CLOUD_USER, KOS_TEST_CLOUD_ADMIN, TC_HOME. Any OS_* variable
# of the caller is dropped first, so it can't point the command at another cloud.
# Exit code: the command's; 1 if the cloud failed to start (up.sh printed the failing log).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
trap '"$HERE/down.sh" > /dev/null' EXIT
trap "exit 130" INT; trap "exit 143" TERM HUP
"$HERE/up.sh" || exit 1
for v in $(compgen -e | grep '^OS_'); do unset "$v"; done
. "$TC_HOME/env.sh"
"$@"
rc=$?
exit $rc
