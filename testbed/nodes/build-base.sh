#!/bin/bash
# build-base.sh [--force] -- build the read-only node base rootfs and the offline apt repo, once per machine.
# Cached under $TB_CACHE (returns at once when present); --force rebuilds. Host packages: install.sh.
# Needs Debian's package registry (debootstrap + apt, the ordinary clients) and nothing else.
#
#   $TB_CACHE/base/         debootstrapped bookworm (minbase + systemd + sshd + net tools), user `debian`
#                           with passwordless sudo; no SSH keys at all (each node gets its Nova keypair's key)
#   $TB_CACHE/repo/         flat apt repo (containerd, runc, CNI plugins, docker.io, etcd-server ...), which
#                           the hypervisor serves inside the sandbox on the tenant gateway address
#   $TB_CACHE/build-seconds how long the last build took (bench.sh prints it)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[[ ${1:-} == --force ]] && rm -rf "$TB_CACHE/base" "$TB_CACHE/repo"
B=$TB_CACHE/base
if [[ -x $B/usr/sbin/sshd && -f $TB_CACHE/repo/Packages ]]; then
  log "base cached: $B"; exit 0
fi
SUITE=${TB_SUITE:-bookworm}
MIRROR=${TB_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
[[ -n $MIRROR ]] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
INCLUDE=systemd,systemd-sysv,dbus,openssh-server,openssh-sftp-server,iproute2,iptables,iputils-ping,procps,sudo,tcpdump,ca-certificates,less,netbase,kmod,socat
# what a provisioner may apt-get install on a node (served offline from $TB_CACHE/repo)
REPO_PKGS=${TB_REPO_PKGS:-"containerd runc containernetworking-plugins docker.io conntrack socat ebtables ethtool curl etcd-server kubernetes-client"}

t0=$(date +%s)
mkdir -p "$TB_CACHE"; R=$B.tmp; rm -rf "$R"
log "debootstrap $SUITE from $MIRROR -> $B"
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$R" "$MIRROR" >"$TB_CACHE/debootstrap.log" 2>&1 \
  || { tail -20 "$TB_CACHE/debootstrap.log"; die "debootstrap failed (log: $TB_CACHE/debootstrap.log)"; }
log "debootstrap took $(( $(date +%s) - t0 ))s; downloading repo packages: $REPO_PKGS"

# offline apt repo, resolved against this exact base (download-only: the base stays untouched)
mkdir -p "$R/tmp/repo-dl/partial"
chroot "$R" apt-get -q -o Dir::Cache::archives=/tmp/repo-dl install --download-only -y \
    --no-install-recommends $REPO_PKGS >"$TB_CACHE/repo-download.log" 2>&1 \
  || { tail -20 "$TB_CACHE/repo-download.log"; die "repo download failed (log: $TB_CACHE/repo-download.log)"; }
rm -rf "$TB_CACHE/repo.tmp"; mkdir -p "$TB_CACHE/repo.tmp"
mv "$R"/tmp/repo-dl/*.deb "$TB_CACHE/repo.tmp/"; rm -rf "$R/tmp/repo-dl"
(cd "$TB_CACHE/repo.tmp" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null >Packages && gzip -kf Packages)

# customise the base; everything per node goes into the node's overlay upper dir (node.sh)
chroot "$R" apt-get clean
echo 'APT::Keep-Downloaded-Packages "false";' >"$R/etc/apt/apt.conf.d/99testbed"
rm -rf "$R"/var/lib/apt/lists/*
# sources.list and resolv.conf are written per node (they name the tenant gateway)
# modprobe: the host kernel has everything built in and no /lib/modules; a modules.builtin stub makes
# "modprobe overlay|br_netfilter|..." a no-op success, as on a cloud image whose kernel has them
KV=$(uname -r); mkdir -p "$R/lib/modules/$KV"
for m in overlay br_netfilter bridge veth nf_conntrack nf_nat iptable_nat iptable_filter ip_tables \
         xt_MASQUERADE xt_conntrack xt_comment xt_mark ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh vxlan \
         ip_set xt_set nf_tables nft_masq ipt_MASQUERADE; do
  echo "kernel/net/$m.ko"; done >"$R/lib/modules/$KV/modules.builtin"
chroot "$R" depmod -a "$KV" 2>/dev/null || true
# sshd: key auth only; host keys are generated per node
rm -f "$R"/etc/ssh/ssh_host_*
cat >"$R/etc/ssh/sshd_config.d/testbed.conf" <<'EOT'
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
PrintMotd no
EOT
# the image's default user (as on Debian's cloud images) with passwordless sudo
chroot "$R" useradd -m -s /bin/bash debian
echo 'debian ALL=(ALL) NOPASSWD:ALL' >"$R/etc/sudoers.d/90-cloud-user"; chmod 440 "$R/etc/sudoers.d/90-cloud-user"
# keep the boot lean: nothing of this works or matters in a container
chroot "$R" systemctl enable ssh >/dev/null 2>&1 || true
chroot "$R" systemctl mask getty@tty1.service console-getty.service systemd-networkd-wait-online.service \
    systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
    e2scrub_reap.service >/dev/null 2>&1 || true
rm -rf "$TB_CACHE/repo"; mv "$TB_CACHE/repo.tmp" "$TB_CACHE/repo"
mv "$R" "$B"
echo $(( $(date +%s) - t0 )) >"$TB_CACHE/build-seconds"
log "base built in $(cat "$TB_CACHE/build-seconds")s: $(du -sh "$B" | cut -f1), repo $(du -sh "$TB_CACHE/repo" | cut -f1)" \
    "($(grep -c ^Package: "$TB_CACHE/repo/Packages") packages)"
