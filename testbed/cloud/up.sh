#!/bin/bash
# Start the test cloud: a small real OpenStack (Debian bookworm = Zed) on 127.0.0.1, no systemd.
#   MariaDB, RabbitMQ, Keystone, Glance, Placement, Nova (api/conductor/scheduler + nova-compute
#   with the fake driver), Neutron (ML2/openvswitch + router plugin; a fake "OVS agent" is
#   registered so ports bind), Octavia (api + worker with noop amphora/compute/network drivers).
# Then it seeds the cloud for kos (seed_keystone.py, seed_cloud.py) and writes $TC_HOME/env.sh.
#
# Idempotent: if the cloud of this $TC_HOME is already up and answering it returns at once;
# a stale or half-started one is stopped (down.sh) and wiped first. On a failed start it prints
# the tail of the failing log and stops what it started (logs stay in $TC_HOME/log).
# Works in the root network namespace or inside one: `ip netns exec NS env TC_HOME=DIR up.sh`.
# Usage: [TC_HOME=DIR] testbed/cloud/up.sh        (default TC_HOME=/tmp/kos-test-cloud)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
T0=$(ts)

loopback_up
if [ -e "$UP_MARK" ] && answering; then
  cat "$UP_MARK"
  exit 0
fi
if compgen -G "$RUN/*.pid" > /dev/null; then
  echo "test cloud: stale state in $TC_HOME (not up, or not answering): stopping it first"
  "$HERE/down.sh"
fi
# wipe only a directory that up.sh made before (marker file) or an empty/absent one
if [ -e "$TC_HOME" ] && [ ! -e "$TC_HOME/.kos-test-cloud" ] && [ -n "$(ls -A "$TC_HOME")" ]; then
  die "$TC_HOME exists, is not empty and was not made by up.sh: refusing to wipe it (set TC_HOME)"
fi
check_ports_free
rm -rf "$TC_HOME"
mkdir -p "$TC_HOME" && touch "$TC_HOME/.kos-test-cloud"
mkdir -p "$ETC"/{keystone,glance,placement,nova,neutron,octavia} "$LOG" "$RUN" \
         "$DATA"/{mysql,rabbit/home,keystone,glance/images,glance/staging,glance/tasks,nova/instances,locks}
cd "$TC_HOME"

# On any failure: say where, show the log of the step, stop what was started.
STEP_LOGS=()
step() { say "$1"; shift; STEP_LOGS=("$@"); }
failed() {
  local rc=$?
  trap - EXIT
  [ $rc = 0 ] && return
  echo "test cloud: start FAILED (exit $rc); logs in $LOG" >&2
  [ -n "${TC_DIED:-}" ] || tail_log "${STEP_LOGS[@]}"
  kill $(jobs -p) 2> /dev/null || true   # migrations, the fake agent's retries
  "$HERE/down.sh" > /dev/null 2>&1 || true
  exit $rc
}
trap failed EXIT
trap "exit 130" INT; trap "exit 143" TERM HUP

# bg_sync NAME CMD...: run a schema migration in the background (they overlap
# with keystone start-up); waited for before the services start.
declare -A SYNC
bg_sync() { local n=$1; shift; "$@" > "$LOG/$n-dbsync.log" 2>&1 & SYNC[$n]=$!; }

########################################################################## infra
step "mariadb" "$LOG/mysql-install.log" "$LOG/mysqld.err" "$LOG/mysqld.log"
mariadb-install-db --no-defaults --datadir="$DATA/mysql" --user=root \
  --auth-root-authentication-method=socket --skip-test-db > "$LOG/mysql-install.log" 2>&1
STEP_LOGS=("$LOG/mysqld.err" "$LOG/mysqld.log")
start mysqld mariadbd --no-defaults --datadir="$DATA/mysql" --user=root \
  --bind-address=$IP --port=3306 --socket="$RUN/mysql.sock" --pid-file="$RUN/mysqld.self.pid" \
  --skip-name-resolve --innodb-buffer-pool-size=32M --performance-schema=OFF \
  --max-connections=1000 --innodb-flush-log-at-trx-commit=0 --skip-log-bin \
  --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
  --log-error="$LOG/mysqld.err"

step "rabbitmq" "$LOG/epmd.log"
# epmd is started by us in the foreground (so we own its pid) and bound to loopback.
start epmd /usr/bin/epmd -address 127.0.0.1
wait_port epmd 4369 20   # else erl would spawn its own (daemonised) epmd
STEP_LOGS=("$LOG/rabbitmq.log")
echo '[].' > "$ETC/rabbit_enabled_plugins"
printf 'listeners.tcp.default = %s:5672\nloopback_users = none\n' $IP > "$ETC/rabbitmq.conf"
# run the real server script as root (the /usr/sbin wrapper would `su rabbitmq`);
# HOME holds the erlang cookie; dist port + epmd bound to loopback. No Erlang VM of this tree may
# start an epmd of its own (`-start_epmd false`): one started while ours is stopping daemonises
# out of every process group down.sh signals, and outlives the test bed (a LEAK).
start rabbitmq env HOME=$DATA/rabbit/home RABBITMQ_NODENAME=rabbit@localhost \
  RABBITMQ_NODE_IP_ADDRESS=$IP RABBITMQ_NODE_PORT=5672 RABBITMQ_DIST_PORT=25672 \
  RABBITMQ_MNESIA_BASE=$DATA/rabbit/mnesia RABBITMQ_LOG_BASE=$LOG/rabbit \
  RABBITMQ_CONFIG_FILE=$ETC/rabbitmq RABBITMQ_ENABLED_PLUGINS_FILE=$ETC/rabbit_enabled_plugins \
  ERL_EPMD_ADDRESS=$IP ERL_AFLAGS="-start_epmd false" \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
  /usr/lib/rabbitmq/bin/rabbitmq-server

wait_port mysqld 3306 60
mariadb --no-defaults -S "$RUN/mysql.sock" -uroot <<EOF
CREATE USER 'os'@'127.0.0.1' IDENTIFIED BY '$TC_PW';
CREATE DATABASE keystone; CREATE DATABASE glance; CREATE DATABASE placement;
CREATE DATABASE nova_api; CREATE DATABASE nova; CREATE DATABASE nova_cell0;
CREATE DATABASE neutron; CREATE DATABASE octavia;
GRANT ALL PRIVILEGES ON *.* TO 'os'@'127.0.0.1';
EOF

####################################################################### keystone
step "keystone config + db" "$LOG/keystone-manage.log"
cat > "$ETC/keystone/keystone.conf" <<EOF
[DEFAULT]
log_file = $LOG/keystone-app.log
[database]
connection = $DB_URL/keystone?charset=utf8
[identity]
# bcrypt cost 4 instead of 12: every service/user auth gets ~0.2 s faster
password_hash_rounds = 4
[token]
provider = fernet
[fernet_tokens]
key_repository = $DATA/keystone/fernet-keys
[fernet_receipts]
key_repository = $DATA/keystone/fernet-keys
[credential]
key_repository = $DATA/keystone/credential-keys
EOF
KM="keystone-manage --config-file $ETC/keystone/keystone.conf"
{ # (keystone-manage prints harmless eventlet tracebacks at exit: keep them in a log)
$KM db_sync
$KM fernet_setup --keystone-user root --keystone-group root
$KM credential_setup --keystone-user root --keystone-group root
$KM bootstrap --bootstrap-password "$TC_PW" --bootstrap-region-id RegionOne \
  --bootstrap-admin-url $KS_URL/v3/ --bootstrap-internal-url $KS_URL/v3/ \
  --bootstrap-public-url $KS_URL/v3/
} >> "$LOG/keystone-manage.log" 2>&1 || die "keystone-manage failed" "$LOG/keystone-manage.log"
start keystone uwsgi --plugin python3 --http-socket $IP:5000 --master --die-on-term \
  --processes 1 --threads 8 --enable-threads --lazy-apps --buffer-size 65535 --add-header "Connection: close" \
  --env OS_KEYSTONE_CONFIG_FILES="$ETC/keystone/keystone.conf" \
  --wsgi-file /usr/bin/keystone-wsgi-public

# The HTTPS front: a private CA (only this cloud's clients trust it) and a certificate for
# 127.0.0.1 from it; faultproxy.py --tls terminates TLS on the TC_TLS_FRONT ports and forwards
# to the services' plain ports. Keystone's catalog lists these URLs as region $TC_TLS_REGION.
step "https front" "$LOG/tls-front.log"
TLS=$TC_HOME/tls
mkdir -p "$TLS"
{
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=kos test cloud CA" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" -keyout "$TLS/ca.key" -out "$TLS/ca.pem"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$IP" \
  -keyout "$TLS/front.key" -out "$TLS/front.csr"
printf 'subjectAltName=IP:%s,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' $IP > "$TLS/front.ext"
openssl x509 -req -in "$TLS/front.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial \
  -days 30 -extfile "$TLS/front.ext" -out "$TLS/front.pem"
} > "$LOG/tls-ca.log" 2>&1 || die "could not make the HTTPS front's CA" "$LOG/tls-ca.log"
# shellcheck disable=SC2086  # one argument per port pair
start tls-front $PY "$HERE/faultproxy.py" --state "$RUN/tls-front.json" --every 0 \
  --tls "$TLS/front.pem" "$TLS/front.key" $TC_TLS_FRONT

# clouds.yaml: the admin cloud (operator: seeding, admin-only checks) and the project user's
# cloud (member + load-balancer_member of project demo): the only one kos's tests use.
cloud_entry() {
  cat <<EOF
  $1:
    auth: {auth_url: "$KS_URL/v3", username: $2, password: "$TC_PW", project_name: $3,
           user_domain_name: Default, project_domain_name: Default}
    region_name: RegionOne
    identity_api_version: 3
EOF
}
# The project user through the HTTPS front: its auth_url, its region of HTTPS endpoints, its CA.
tls_entry() {
  cat <<EOF
  $TC_TLS_CLOUD:
    auth: {auth_url: "https://$IP:15000/v3", username: demo, password: "$TC_PW", project_name: demo,
           user_domain_name: Default, project_domain_name: Default}
    region_name: $TC_TLS_REGION
    identity_api_version: 3
    cacert: $TLS/ca.pem
EOF
}
{ echo "clouds:"; cloud_entry $TC_ADMIN_CLOUD admin admin; cloud_entry $TC_USER_CLOUD demo demo; tls_entry; } \
  > "$TC_HOME/clouds.yaml"
# env.sh: what with-cloud.sh exports; `. $TC_HOME/env.sh` in a shell does the same.
cat > "$TC_HOME/env.sh" <<EOF
export TC_HOME=$TC_HOME
export KOS_TEST_CLOUD=1
export OS_CLIENT_CONFIG_FILE=$TC_HOME/clouds.yaml
export OS_CLOUD=$TC_USER_CLOUD
export KOS_TEST_CLOUD_USER=$TC_USER_CLOUD
export KOS_TEST_CLOUD_ADMIN=$TC_ADMIN_CLOUD
export KOS_TEST_CLOUD_TLS=$TC_TLS_CLOUD
export KOS_TEST_CLOUD_CACERT=$TLS/ca.pem
EOF

##################################################################### glance cfg
step "glance config + db"
cat > "$ETC/glance/glance-api.conf" <<EOF
[DEFAULT]
bind_host = $IP
bind_port = 9292
workers = 1
log_file = $LOG/glance-api-app.log
enabled_backends = fs:file
[database]
connection = $DB_URL/glance?charset=utf8
$(authtoken glance image)
[paste_deploy]
flavor = keystone
config_file = /etc/glance/glance-api-paste.ini
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $DATA/glance/images
[os_glance_staging_store]
filesystem_store_datadir = $DATA/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = $DATA/glance/tasks
[oslo_concurrency]
lock_path = $DATA/locks
EOF
bg_sync glance glance-manage --config-file "$ETC/glance/glance-api.conf" db_sync

################################################################## placement cfg
step "placement config + db"
cat > "$ETC/placement/placement.conf" <<EOF
[DEFAULT]
log_file = $LOG/placement-app.log
[placement_database]
connection = $DB_URL/placement?charset=utf8
[api]
auth_strategy = keystone
$(authtoken placement placement)
EOF
bg_sync placement placement-manage --config-file "$ETC/placement/placement.conf" db sync

#################################################################### neutron cfg
step "neutron config + db"
cat > "$ETC/neutron/neutron.conf" <<EOF
[DEFAULT]
bind_host = $IP
bind_port = 9696
core_plugin = ml2
service_plugins = router
allow_overlapping_ips = true
auth_strategy = keystone
transport_url = $RABBIT_URL
api_workers = 1
rpc_workers = 1
rpc_state_report_workers = 1
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
dhcp_agent_notification = false
# the fake OVS agent reports once; keep it "alive" for ~24 days
agent_down_time = 2000000
# a router's extra-route limit, known to kos's tests (preflight)
max_routes = $TC_MAX_ROUTES
log_file = $LOG/neutron-server-app.log
state_path = $DATA/neutron
[database]
connection = $DB_URL/neutron?charset=utf8
$(authtoken neutron network)
[oslo_concurrency]
lock_path = $DATA/locks
EOF
cat > "$ETC/neutron/ml2_conf.ini" <<EOF
[ml2]
type_drivers = flat,vxlan
tenant_network_types = vxlan
mechanism_drivers = openvswitch
extension_drivers = port_security
[ml2_type_flat]
flat_networks = public
[ml2_type_vxlan]
vni_ranges = 1:1000
[securitygroup]
firewall_driver = noop
EOF
NCONF=(--config-file "$ETC/neutron/neutron.conf" --config-file "$ETC/neutron/ml2_conf.ini")
bg_sync neutron neutron-db-manage "${NCONF[@]}" upgrade heads

####################################################################### nova cfg
step "nova config + db"
cat > "$ETC/nova/nova.conf" <<EOF
[DEFAULT]
host = $TC_HOST
my_ip = $IP
transport_url = $RABBIT_URL
compute_driver = fake.FakeDriver
# periodic tasks (incl. the scheduler's host discovery) start at once, not after a random 0-60 s
periodic_fuzzy_delay = 0
enabled_apis = osapi_compute
osapi_compute_listen = $IP
osapi_compute_listen_port = 8774
osapi_compute_workers = 1
state_path = $DATA/nova
instances_path = $DATA/nova/instances
[api]
auth_strategy = keystone
[api_database]
connection = $DB_URL/nova_api?charset=utf8
[database]
connection = $DB_URL/nova?charset=utf8
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 5
[filter_scheduler]
enabled_filters = ComputeFilter,ImagePropertiesFilter
$(authtoken nova compute)
[placement]
$(ksa placement)
[neutron]
$(ksa neutron)
[glance]
region_name = RegionOne
[oslo_concurrency]
lock_path = $DATA/locks
[vnc]
enabled = false
[oslo_messaging_notifications]
driver = noop
EOF
cp /etc/nova/api-paste.ini "$ETC/nova/"
NM="nova-manage --config-file $ETC/nova/nova.conf"
NOVA=(--config-file "$ETC/nova/nova.conf")
nova_sync() {
  $NM api_db sync && $NM cell_v2 map_cell0 --database_connection "$DB_URL/nova_cell0?charset=utf8" &&
  $NM cell_v2 create_cell --name cell1 && $NM db sync
}
bg_sync nova nova_sync

#################################################################### octavia cfg
step "octavia config + db"
# the amphora create flow signs a (never used) amphora cert and reads client_ca
mkdir -p "$DATA/octavia"
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=tc-octavia-ca \
  -keyout "$DATA/octavia/ca.key" -out "$DATA/octavia/ca.pem" 2> /dev/null
cat > "$ETC/octavia/octavia.conf" <<EOF
[DEFAULT]
transport_url = $RABBIT_URL
log_file = $LOG/octavia-app.log
[api_settings]
bind_host = $IP
bind_port = 9876
auth_strategy = keystone
enabled_provider_drivers = amphora:'Amphora (noop drivers)'
default_provider_driver = amphora
[database]
connection = $DB_URL/octavia?charset=utf8
$(authtoken octavia load-balancer)
[service_auth]
$(ksa octavia)
[neutron]
# Where the network driver reads ports (testbed/cloud/octavia_driver/): the plain endpoints.
region_name = RegionOne
[controller_worker]
amphora_driver = amphora_noop_driver
compute_driver = compute_noop_driver
network_driver = network_noop_reading_neutron
volume_driver = volume_noop_driver
image_driver = image_noop_driver
loadbalancer_topology = SINGLE
workers = 1
client_ca = $DATA/octavia/ca.pem
[certificates]
ca_certificate = $DATA/octavia/ca.pem
ca_private_key = $DATA/octavia/ca.key
[task_flow]
jobboard_enabled = False
[oslo_messaging]
topic = octavia_prov
[oslo_concurrency]
lock_path = $DATA/locks
EOF
bg_sync octavia octavia-db-manage --config-file "$ETC/octavia/octavia.conf" upgrade head

################################################ keystone catalog, users, seeds
step "waiting for keystone" "$LOG/keystone.log" "$LOG/keystone-app.log"
wait_http keystone $KS_URL/v3 60
step "keystone catalog/users" "$LOG/seed-keystone.log"
$PY "$HERE/seed_keystone.py" "$TC_PW" "$TC_TLS_REGION" $TC_TLS_FRONT > "$LOG/seed-keystone.log" 2>&1
step "waiting for db syncs"
for n in "${!SYNC[@]}"; do
  wait "${SYNC[$n]}" || die "db sync of $n failed" "$LOG/$n-dbsync.log"
done
step "starting services"
start glance-api glance-api --config-file "$ETC/glance/glance-api.conf"
start placement uwsgi --plugin python3 --http-socket $IP:8778 --master --die-on-term \
  --processes 1 --threads 8 --enable-threads --lazy-apps --buffer-size 65535 --add-header "Connection: close" \
  --env OS_PLACEMENT_CONFIG_DIR="$ETC/placement" --wsgi-file /usr/bin/placement-api
start neutron-server neutron-server "${NCONF[@]}"
for svc in api conductor scheduler; do
  start nova-$svc nova-$svc "${NOVA[@]}" --log-file "$LOG/nova-$svc-app.log"
done
# no nova-compute package (it would pull libvirt/qemu): start it from python3-nova
start nova-compute $PY -c 'import sys; from nova.cmd.compute import main; sys.exit(main())' \
  "${NOVA[@]}" --log-file "$LOG/nova-compute-app.log"
# The noop network driver, reading the ports Neutron knows (testbed/cloud/octavia_driver/).
for svc in api worker; do
  PYTHONPATH="$HERE/octavia_driver" start octavia-$svc octavia-$svc --config-file "$ETC/octavia/octavia.conf" --log-file "$LOG/octavia-$svc-app.log"
done

# fake OVS agent (so ML2/openvswitch binds ports on $TC_HOST): its report_state
# RPC call waits until neutron-server's RPC workers consume
$PY "$HERE/fake_ovs_agent.py" "${NCONF[@]}" --host "$TC_HOST" > "$LOG/fake-ovs-agent.log" 2>&1 &
AGENT=$!
step "waiting for the other APIs"
for name in "${!TC_APIS[@]}"; do wait_http "$name" "${TC_APIS[$name]}"; done
curl -s -o /dev/null --max-time 5 --cacert "$TLS/ca.pem" https://$IP:15000/v3 ||
  die "the HTTPS front does not answer on https://$IP:15000/v3" $(service_logs tls-front)
for name in nova-conductor nova-scheduler nova-compute octavia-worker; do
  alive $name || die "$name exited" $(service_logs $name)
done

step "waiting for the fake OVS agent registration" "$LOG/fake-ovs-agent.log"
wait "$AGENT" || die "fake OVS agent registration failed" "$LOG/fake-ovs-agent.log" $(service_logs neutron-server)

step "seed: flavors, image, networks, router, keypair, quotas" "$LOG/seed-cloud.log"
( . "$TC_HOME/env.sh"; exec $PY "$HERE/seed_cloud.py" ) > "$LOG/seed-cloud.log" 2>&1
trap - EXIT
{
  echo "test cloud UP in $(awk -v a="$(ts)" -v b="$T0" 'BEGIN{printf "%.1f", a-b}') s, TC_HOME=$TC_HOME (logs: $LOG)"
  echo "  clouds.yaml: $TC_HOME/clouds.yaml"
  echo "    $TC_USER_CLOUD   user demo, project demo, roles member + load-balancer_member (for kos)"
  echo "    $TC_ADMIN_CLOUD  user admin, project admin (operator only)"
  echo "    $TC_TLS_CLOUD  user demo through the HTTPS front (region $TC_TLS_REGION, cacert $TLS/ca.pem)"
  echo "  environment: . $TC_HOME/env.sh   (OS_CLIENT_CONFIG_FILE, OS_CLOUD=$TC_USER_CLOUD, KOS_TEST_CLOUD=1)"
  sed 's/^/  /' "$LOG/seed-cloud.log"
} | tee "$UP_MARK"
