# Shared settings and helpers for the test cloud scripts (sourced, not run).
TC_HOME=$(realpath -m "${TC_HOME:-/tmp/kos-test-cloud}")
TC_PW=${TC_PW:-secret}            # every password (service users, admin, demo, DB)
TC_HOST=tc-compute                # nova `host` of all nova services = fake hypervisor name
IP=127.0.0.1
KS_URL=http://$IP:5000
DB_URL=mysql+pymysql://os:$TC_PW@$IP:3306
RABBIT_URL=rabbit://guest:guest@$IP:5672/
PY=/usr/bin/python3               # Debian's python (the OpenStack libs live there)

ETC=$TC_HOME/etc; LOG=$TC_HOME/log; RUN=$TC_HOME/run; DATA=$TC_HOME/data

ts() { date +%s.%N; }
say() { awk -v a="$(ts)" -v b="${T0:-$(ts)}" -v m="$*" 'BEGIN{printf "[%6.1fs] %s\n", a-b, m}'; }

# start NAME CMD...: run CMD detached in its own session (pgid == pid), log to
# $LOG/NAME.log and record the pid in $RUN/NAME.pid. Everything is started with
# its working directory in $TC_HOME, so down.sh signals a recorded process group
# only while it still is ours (no harm from a stale pid file).
start() {
  local name=$1; shift
  ( cd "$TC_HOME" && exec setsid "$@" > "$LOG/$name.log" 2>&1 < /dev/null ) &
  echo $! > "$RUN/$name.pid"
}

# ours PGID: true if a process of that group has its cwd in $TC_HOME
# (environ can't be used as a tag: setproctitle overwrites it in neutron/octavia)
ours() {
  local p c
  for p in $(ps -eo pid=,pgid= | awk -v g="$1" '$2 == g {print $1}'); do
    c=$(readlink "/proc/$p/cwd" 2>/dev/null) || continue
    case $c/ in "$TC_HOME"/*) return 0;; esac
  done
  return 1
}

# wait_http URL [SECONDS]: wait until URL answers any HTTP status.
wait_http() {
  local url=$1 max=${2:-120} i=0
  until curl -s -o /dev/null --max-time 2 "$url"; do
    i=$((i+1)); [ $i -ge $((max*2)) ] && { echo "timeout waiting for $url" >&2; return 1; }
    sleep 0.5
  done
}

# wait_port PORT [SECONDS]
wait_port() {
  local port=$1 max=${2:-60} i=0
  until (exec 3<>/dev/tcp/$IP/$port) 2>/dev/null; do
    i=$((i+1)); [ $i -ge $((max*2)) ] && { echo "timeout waiting for port $port" >&2; return 1; }
    sleep 0.5
  done
}

# keystone_authtoken + service credentials block for a service user
authtoken() {
  cat <<EOF
[keystone_authtoken]
www_authenticate_uri = $KS_URL
auth_url = $KS_URL
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = $TC_PW
EOF
}
# plain keystoneauth block (for [placement], [neutron], [service_auth] ...)
ksa() {
  cat <<EOF
auth_url = $KS_URL
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = $TC_PW
region_name = RegionOne
EOF
}
