#!/usr/bin/env bash
# Idempotent set-up of a Debian 12 machine for kolapy: system packages (QEMU,
# firmware, image-build tools) and a virtualenv in .venv with kolapy installed.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

PKGS=(
  # run machines
  qemu-system-x86 qemu-system-arm qemu-utils ovmf qemu-efi-aarch64 openssh-client
  # build the reference image
  mmdebstrap debian-archive-keyring ostree gdisk fdisk e2fsprogs dosfstools mtools
  grub-pc-bin grub-efi-amd64-bin grub2-common zstd xz-utils cpio
  # build the reference live ISO (kolapy image build --iso): squashfs root, grub-mkrescue
  squashfs-tools xorriso
  # the arm64 image on an x86_64 host (its GRUB modules come from the image itself:
  # Debian has no grub-efi-arm64-bin for amd64)
  qemu-user-static binfmt-support arch-test
  # kolapy itself (Ignition validation) and a Python virtualenv
  ignition python3 python3-venv python3-dev
  # services guests reach on the host (kolapy.hostsvc): the per-connection relay QEMU
  # runs, a real container registry, and busybox for locally built test images
  socat docker-registry busybox-static
  # kolapy's own tests open reports/report.html in a real (headless) browser
  chromium
  # the libvirt platform (--platform libvirt): the daemon, and what builds libvirt-python;
  # dnsmasq serves DHCP on libvirt networks (--libvirt-network nat: SSH to the lease)
  libvirt-daemon-system libvirt-dev pkg-config dnsmasq-base
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian starts docker-registry as a system service on :5000; kolapy runs its own
# registries on private unix sockets, so a host-wide one is not wanted.
if [ -d /run/systemd/system ] && systemctl is-enabled -q docker-registry.service 2>/dev/null; then
  $SUDO systemctl disable --now docker-registry.service || true
fi

# libvirtd for --platform libvirt (tools/libvirtd-up says how and why).
tools/libvirtd-up || echo "setup: libvirtd is not running: --platform libvirt will not work" >&2

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import kolapy, xdist, paramiko, qemu.qmp, libvirt' 2>/dev/null \
   || [ pyproject.toml -nt .venv/.kolapy-installed ]; then
  echo "setup: installing kolapy into .venv" >&2
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev,libvirt]'
  touch .venv/.kolapy-installed
fi
echo "setup: ready (.venv/bin/kolapy, .venv/bin/pytest)" >&2
