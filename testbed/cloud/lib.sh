# Settings and helpers shared by the test-cloud scripts (sourced, not run).
#
# Everything one test cloud owns lives under $TC_HOME: configs (etc/), state (data/: MariaDB,
# RabbitMQ, Glance images, Keystone keys), logs (log/), pids and sockets (run/). Two clouds with
# different TC_HOMEs can run side by side as long as each has its own network namespace (all
# services listen on 127.0.0.1 at fixed ports).
TC_HOME=$(realpath -m "${TC_HOME:-/tmp/kos-test-cloud}")
TC_PW=${TC_PW:-secret}            # every password: admin, demo, service users, DB
TC_HOST=tc-compute                # nova `host` of all nova services = the fake hypervisor's name
TC_ADMIN_CLOUD=testbed-admin      # clouds.yaml entry: admin of project admin
TC_USER_CLOUD=testbed-demo        # clouds.yaml entry: user demo of project demo (what kos uses)
TC_MAX_ROUTES=30                  # neutron max_routes: a router's extra-route limit
TC_TLS_CLOUD=testbed-demo-tls     # clouds.yaml entry: the project user through the HTTPS front
TC_TLS_REGION=RegionTLS           # the catalog's region of HTTPS endpoints (the front's)
IP=127.0.0.1
KS_URL=http://$IP:5000
DB_URL=mysql+pymysql://os:$TC_PW@$IP:3306
RABBIT_URL=rabbit://guest:guest@$IP:5672/
PY=/usr/bin/python3               # Debian's python: the OpenStack libraries live there

ETC=$TC_HOME/etc; LOG=$TC_HOME/log; RUN=$TC_HOME/run; DATA=$TC_HOME/data
UP_MARK=$RUN/up                   # written last by up.sh; removed first by down.sh

# Every port the cloud listens on, with its owner (all on 127.0.0.1).
declare -A TC_PORTS=(
  [3306]=mariadb [4369]=epmd [5672]=rabbitmq [25672]=rabbitmq-dist [5000]=keystone
  [9292]=glance [8778]=placement [9696]=neutron [8774]=nova-api [9876]=octavia-api
  [15000]=tls-front [19292]=tls-front [18778]=tls-front [19696]=tls-front [18774]=tls-front [19876]=tls-front
)
# The HTTPS front (faultproxy.py --tls): its port -> the service's plain port, each API once.
TC_TLS_FRONT="15000=5000 19292=9292 18778=8778 19696=9696 18774=8774 19876=9876"
# The HTTP APIs: name of the started service (its pid file) -> URL that answers once it is up.
declare -A TC_APIS=(
  [keystone]=$KS_URL/v3 [glance-api]=http://$IP:9292/ [placement]=http://$IP:8778/
  [neutron-server]=http://$IP:9696/ [nova-api]=http://$IP:8774/ [octavia-api]=http://$IP:9876/
)

ts() { date +%s.%N; }
say() { awk -v a="$(ts)" -v b="${T0:-$(ts)}" -v m="$*" 'BEGIN{printf "[%6.1fs] %s\n", a-b, m}'; }

# tail_log FILE...: the last lines of each file, framed, on stderr.
tail_log() {
  local f
  for f in "$@"; do
    [ -s "$f" ] || { echo "----- $f: empty" >&2; continue; }
    echo "----- last 25 lines of $f" >&2
    tail -n 25 "$f" >&2
  done
}

# die MESSAGE [LOG...]: print MESSAGE and the tail of the given logs, then exit 1.
die() {
  local msg=$1; shift
  echo "test cloud: $msg" >&2
  tail_log "$@"
  TC_DIED=1
  exit 1
}

# service_logs NAME: the log files of a started service (stdout/stderr and its own log file).
service_logs() { ls "$LOG/$1".log "$LOG/$1"-app.log "$LOG/$1".err 2>/dev/null; }

# start NAME CMD...: run CMD detached in its own session (pgid == pid), stdout/stderr to
# $LOG/NAME.log, pid in $RUN/NAME.pid. The working directory is $TC_HOME, which is how
# ours() recognises the group later (no harm from a stale pid file).
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

# alive NAME: the service started as NAME still has a process of ours.
alive() { [ -s "$RUN/$1.pid" ] && ours "$(cat "$RUN/$1.pid")"; }

# wait_http NAME URL [SECONDS]: wait until URL answers any HTTP status; fail at once,
# with the tail of its logs, if the service NAME has exited.
wait_http() {
  local name=$1 url=$2 max=${3:-180} i=0
  until curl -s -o /dev/null --max-time 2 "$url"; do
    alive "$name" || die "$name exited before answering on $url" $(service_logs "$name")
    i=$((i+1)); [ $i -ge $((max*2)) ] && die "$name: no answer on $url after $max s" $(service_logs "$name")
    sleep 0.5
  done
}

# wait_port NAME PORT [SECONDS]: the same for a plain TCP port.
wait_port() {
  local name=$1 port=$2 max=${3:-60} i=0
  until (exec 3<>/dev/tcp/$IP/$port) 2>/dev/null; do
    alive "$name" || die "$name exited before listening on $IP:$port" $(service_logs "$name")
    i=$((i+1)); [ $i -ge $((max*2)) ] && die "$name: not listening on $IP:$port after $max s" $(service_logs "$name")
    sleep 0.5
  done
}

# answering: every service of this cloud still runs and every API answers ("already up").
answering() {
  local f name
  for f in "$RUN"/*.pid; do
    case $f in *.self.pid) continue;; esac
    alive "$(basename "$f" .pid)" || return 1
  done
  for name in "${!TC_APIS[@]}"; do
    curl -s -o /dev/null --max-time 2 "${TC_APIS[$name]}" || return 1
  done
}

# check_ports_free: fail, naming the port and its holder, if any port the cloud needs is taken
# in this network namespace.
check_ports_free() {
  local port holder busy=()
  for port in "${!TC_PORTS[@]}"; do
    holder=$(ss -Hltnp "sport = :$port" 2>/dev/null | head -1)
    [ -n "$holder" ] || continue
    holder=$(sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 (pid \2)/p' <<< "$holder")
    busy+=("  port $port (for ${TC_PORTS[$port]}) is in use by ${holder:-an unknown process}")
  done
  [ ${#busy[@]} = 0 ] && return 0
  printf '%s\n' "test cloud: cannot start, ports it needs on $IP are taken:" "${busy[@]}" \
    "stop what holds them, or run the cloud in its own network namespace" \
    "(ip netns exec NS env TC_HOME=... $0)" >&2
  exit 1
}

# loopback_up: inside a fresh network namespace `lo` is down; bring it up.
loopback_up() {
  ip -o link show lo 2>/dev/null | grep -q '[<,]UP[,>]' || ip link set lo up ||
    die "the loopback interface is down and could not be brought up"
}

# keystone_authtoken + service credentials block for service user $1 of service type $2 (the
# type lets keystonemiddleware check an application credential's access rules; without it,
# every request of such a credential is refused alike, as on a cloud that forgot it)
authtoken() {
  cat <<EOF
[keystone_authtoken]
service_type = $2
# the catalog has a second region (the HTTPS front's, whose CA the services do not trust)
region_name = RegionOne
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
