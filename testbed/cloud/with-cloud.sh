#!/bin/bash
# CI helper: bring the test cloud up, run a command against it, always tear down.
#   ./with-cloud.sh cargo test --test openstack_it
# The command sees OS_* (admin) and OS_CLIENT_CONFIG_FILE (clouds testbed-admin/testbed-demo)
# plus TC_HOME (demorc, adminrc, logs under $TC_HOME/log).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
trap '"$HERE/down.sh" > /dev/null' EXIT
"$HERE/up.sh" || { echo "test cloud failed to start; logs in $LOG" >&2; exit 1; }
export TC_HOME OS_CLIENT_CONFIG_FILE=$TC_HOME/clouds.yaml
. "$TC_HOME/adminrc"
"$@"
