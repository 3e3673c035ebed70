#!/usr/bin/env bash
# Benchmark (prints figures; not a test): launching N servers and reading the inventory,
# kos vs Ansible's openstack.cloud collection, on the test cloud.
#
#   testbed/cloud/with-cloud.sh bench/cloud-launch.sh [N ...]     (default N: 1 10 20)
#
# For each N: `kos up --only instances` of N nodes (ports with pairs, servers in parallel,
# waits for ACTIVE), a no-op re-run, `kos destroy`; then an Ansible playbook creating the same
# N servers with openstack.cloud.server (wait: true, the module's way), and deleting them.
# Then the inventory of 50 servers: `kos inventory --list` vs `ansible-inventory` with the
# openstack.cloud.openstack inventory plugin. API calls: kos counts its own; Ansible's are
# not counted. Needs: the test cloud's env (with-cloud.sh), and Ansible with the openstack.cloud
# collection in $KOS_BENCH_TOOLS (default /opt/kos-bench-tools; installed on first use).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${OS_CLIENT_CONFIG_FILE:?run me under testbed/cloud/with-cloud.sh}"
TOOLS=${KOS_BENCH_TOOLS:-/opt/kos-bench-tools}
if [ ! -x "$TOOLS/bin/ansible-playbook" ]; then
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q --disable-pip-version-check ansible openstacksdk
fi
# openstacksdk 4.22 no longer imports openstack.version on `import openstack`, which the
# openstack.cloud collection shipped with Ansible 14.5 reads: preload it in this venv only.
site=$("$TOOLS/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
[ -f "$site/sitecustomize.py" ] || printf 'try:\n    import openstack.version  # noqa: F401\nexcept ImportError:\n    pass\n' > "$site/sitecustomize.py"
KOS=${KOS:-$ROOT/target/release/kos}
[ -x "$KOS" ] || (cd "$ROOT" && cargo build -q --release -p kos)
WORK=$(mktemp -d /tmp/kos-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export ANSIBLE_LOCAL_TEMP=$WORK/ansible-tmp ANSIBLE_HOME=$WORK/ansible-home ANSIBLE_STDOUT_CALLBACK=default
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

settings() { # settings N CLUSTER
  {
    echo "cluster: {name: $2}"
    echo "cloud: {image: tiny, flavor: m1.tiny, network: demo-net, router: demo-router, key_name: demo-key}"
    echo "ssh: {user: debian, private_key: k}"
    echo "networking: {pod_cidr: 10.66.0.0/16}"
    echo "nodes:"
    echo "  - {name: n1, role: master}"
    for i in $(seq 2 "$1"); do echo "  - {name: n$i, role: worker}"; done
  } > "$WORK/$2.yaml"
}

playbook() { # playbook N STATE: one local host per server, N forks (Ansible's parallelism)
  for i in $(seq 1 "$1"); do echo "ans-$i ansible_connection=local ansible_python_interpreter=$TOOLS/bin/python"; done > "$WORK/hosts"
  cat > "$WORK/launch.yaml" <<YAML
- hosts: all
  gather_facts: false
  tasks:
    - name: server
      openstack.cloud.server:
        cloud: $OS_CLOUD
        state: $2
        name: "{{ inventory_hostname }}"
        image: tiny
        flavor: m1.tiny
        network: demo-net
        key_name: demo-key
        meta: {ansible_host_groups: k8s_worker}
        auto_ip: false   # like kos's benchmark nodes: no floating IP
        wait: true
YAML
  "$TOOLS/bin/ansible-playbook" -i "$WORK/hosts" -f "$1" "$WORK/launch.yaml" > "$WORK/ansible.log" 2>&1 || { tail -20 "$WORK/ansible.log"; return 1; }
}

printf "%-8s %14s %14s %12s %16s %16s\n" N "kos up (s)" "no-op (s)" "kos calls" "ansible up (s)" "ansible del (s)"
[ $# -gt 0 ] || set -- 1 10 20
for n in "$@"; do
  settings "$n" "b$n"
  t0=$(now); out=$("$KOS" up --only instances -f "$WORK/b$n.yaml"); t1=$(now)
  calls=$(echo "$out" | sed -n 's/.*, \([0-9]*\) API calls).*/\1/p')
  t2=$(now); "$KOS" up --only instances -f "$WORK/b$n.yaml" > /dev/null; t3=$(now)
  "$KOS" destroy --yes -q -f "$WORK/b$n.yaml"
  t4=$(now); playbook "$n" present; t5=$(now); playbook "$n" absent; t6=$(now)
  printf "%-8s %14s %14s %12s %16s %16s\n" "$n" "$(secs $t0 $t1)" "$(secs $t2 $t3)" "$calls" "$(secs $t4 $t5)" "$(secs $t5 $t6)"
done

# Inventory of 50 servers: more than the project's quota of 25 (kept low on purpose for the
# quota tests), so the admin raises it for the run and puts it back after.
ADMIN=${KOS_TEST_CLOUD_ADMIN:-testbed-admin}
quota() { openstack --os-cloud "$ADMIN" quota set --instances "$1" --cores "$2" --ram "$3" --ports "$4" demo; }
quota 60 120 102400 150
trap 'quota 25 50 51200 100; rm -rf "$WORK"' EXIT
settings 50 inv
"$KOS" up --only instances -q -f "$WORK/inv.yaml"
cat > "$WORK/openstack.yaml" <<YAML
plugin: openstack.cloud.openstack
only_clouds: [$OS_CLOUD]
expand_hostvars: false
fail_on_errors: true
YAML
t0=$(now); KOS_SETTINGS=$WORK/inv.yaml "$KOS" inventory --list > "$WORK/kos-inv.json"; t1=$(now)
t2=$(now); ANSIBLE_PYTHON_INTERPRETER="$TOOLS/bin/python" "$TOOLS/bin/ansible-inventory" -i "$WORK/openstack.yaml" --list > "$WORK/ans-inv.json" 2>"$WORK/ans-inv.err"; t3=$(now)
hosts_kos=$(python3 -c "import json,sys; print(len(json.load(open('$WORK/kos-inv.json'))['_meta']['hostvars']))")
hosts_ans=$(python3 -c "import json,sys; print(len(json.load(open('$WORK/ans-inv.json'))['_meta']['hostvars']))")
echo
printf "inventory of 50 servers: kos %s s (%s hosts, 3 list calls), ansible-inventory openstack plugin %s s (%s hosts)\n" \
  "$(secs $t0 $t1)" "$hosts_kos" "$(secs $t2 $t3)" "$hosts_ans"
"$KOS" destroy --yes -q -f "$WORK/inv.yaml"
