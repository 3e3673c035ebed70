#!/bin/bash
# install.sh [--force] -- everything the test nodes need on this machine, idempotent:
#   1. host packages (apt; skipped when all are installed)
#   2. the node base rootfs + offline apt repo (build-base.sh; skipped when cached in $TB_CACHE)
# Needs only Debian's package registry, through apt and debootstrap.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PKGS="debootstrap systemd-container openssh-client iproute2 iptables ebtables busybox-static socat dpkg-dev
      util-linux procps python3-openstacksdk"
missing=$(for p in $PKGS; do
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || echo "$p"; done)
if [[ -n $missing ]]; then
  echo "[testbed] installing host packages: $(echo $missing)" >&2
  apt-get -o DPkg::Lock::Timeout=900 update -q
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends $missing
fi
exec "$HERE/build-base.sh" "$@"
