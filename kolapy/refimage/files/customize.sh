#!/bin/sh
# mmdebstrap customize hook for the kolapy reference image.
# $1 = the root file system (mmdebstrap has /proc, /sys and /dev mounted in it),
# $2 = kolapy's files/ directory, $3 = where to write the package list.
# Everything that needs a chroot happens here; the ostree layout is done in Python.
set -eu
root=$1
files=$2
pkglist=$3

# Put back the helpers essential.sh replaced by stubs, and do natively what they
# would have done under emulation.
for f in /usr/bin/deb-systemd-helper /usr/bin/deb-systemd-invoke /usr/sbin/update-ca-certificates; do
    rm -f "$root$f"
    chroot "$root" dpkg-divert --quiet --local --rename --divert "$f.kolapy-real" --remove "$f"
done
calls="$root/var/lib/kolapy-deb-systemd-helper.calls"
if [ -f "$calls" ]; then
    # DPKG_ROOT: the helper works on $root (and runs the host's systemctl --root=$root).
    # Exit codes are ignored, as the maintainer scripts that made these calls do.
    while read -r package args; do
        # shellcheck disable=SC2086  # recorded words (unit names have no blanks)
        DPKG_ROOT="$root" DPKG_MAINTSCRIPT_PACKAGE="$package" \
            perl "$root/usr/bin/deb-systemd-helper" $args >/dev/null || true
    done < "$calls"
    rm -f "$calls"
fi
if [ -f "$root/usr/sbin/update-ca-certificates" ]; then
    certs="$root/etc/ssl/certs"
    sh "$root/usr/sbin/update-ca-certificates" --certsconf "$root/etc/ca-certificates.conf" \
        --certsdir "$root/usr/share/ca-certificates" \
        --localcertsdir "$root/usr/local/share/ca-certificates" \
        --etccertsdir "$certs" --hooksdir "$root/etc/ca-certificates/update.d"
    # It linked each certificate by its path on the host: use the image's path.
    for link in "$certs"/*.pem; do
        target=$(readlink "$link") || continue
        case $target in "$root"/*) ln -sfn "${target#"$root"}" "$link" ;; esac
    done
fi

cp -a "$files/rootfs/." "$root/"
chown -R root:root "$root/etc/sudoers.d" "$root/usr/lib/dracut/modules.d/40kolapy"
chmod 0440 "$root/etc/sudoers.d/nestos-sudo-group"
chmod 0755 "$root/usr/lib/dracut/modules.d/40kolapy/module-setup.sh" \
    "$root/usr/lib/dracut/modules.d/40kolapy/noop-setfiles" \
    "$root/usr/lib/dracut/modules.d/40kolapy/kolapy-mount-var" \
    "$root/usr/lib/dracut/modules.d/40kolapy/kolapy-dump-journal" \
    "$root/usr/lib/dracut/modules.d/40kolapy/kolapy-firstboot-complete" \
    "$root/usr/lib/dracut/modules.d/40kolapy/ignition-ostree-growfs" \
    "$root/usr/sbin/grub-mkconfig"
# NestOS's user groups (files/.../00-nest.ign): Debian has all of them but wheel.
# Ignition's useradd fails on a missing group.
for g in adm sudo systemd-journal docker; do
    grep -q "^$g:" "$root/etc/group" || { echo "group $g missing from the image" >&2; exit 1; }
done
grep -q '^wheel:' "$root/etc/group" || chroot "$root" groupadd --system wheel

# Debian's Ignition module depends on network + url-lib for HTTP configs; fw_cfg
# needs neither and they double the initramfs (FACTS 3).
ign="$root/usr/lib/dracut/modules.d/30ignition/module-setup.sh"
sed -i 's/^\( *echo qemu systemd\) url-lib network$/\1/' "$ign"
grep -q '^ *echo qemu systemd$' "$ign" || { echo "30ignition depends() not as expected" >&2; exit 1; }

# First boot for systemd (presets, Ignition's enabled units): FACTS 5.
echo uninitialized > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# Host keys are made on each machine's first boot (FACTS 11).
rm -f "$root"/etc/ssh/ssh_host_*
rm -f "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
printf 'nameserver 10.0.2.3\n' > "$root/etc/resolv.conf"
# A long device timeout: under heavy TCG load udev may need more than systemd's 90 s default
printf 'LABEL=boot\t/boot\text4\tdefaults,x-systemd.device-timeout=10min\t0\t2\n' > "$root/etc/fstab"
sed -i 's|^SHELL=.*|SHELL=/bin/bash|' "$root/etc/default/useradd"
# systemd's first-boot preset only enables; apply the image's presets fully now so
# Debian's enabled-by-default services (podman, docker, containerd, timers) are off
# and first boot stays fast (FACTS 6).  docker starts on demand via docker.socket.
chroot "$root" systemctl preset-all
chroot "$root" systemctl set-default multi-user.target >/dev/null

kver=$(ls "$root/usr/lib/modules")
[ "$(echo "$kver" | wc -w)" = 1 ] || { echo "expected one kernel, got: $kver" >&2; exit 1; }
# Foreign-arch builds run dracut under qemu-user: the builder asks for an exclusive
# driver list and no compression (zstd then runs natively on the host).
set -- --force --no-hostonly
[ -z "${KOLAPY_DRACUT_DRIVERS:-}" ] || set -- "$@" --drivers "$KOLAPY_DRACUT_DRIVERS"
[ "${KOLAPY_DRACUT_NO_COMPRESS:-}" != 1 ] || set -- "$@" --no-compress
if [ -n "${KOLAPY_RTLD:-}" ]; then
    # dracut runs ldd on every file it installs; Debian's ldd is a bash script (three
    # emulated processes a call).  The root's loader lists the same libraries in one.
    printf '#!/bin/sh\n"%s" --list "$1" 2>/dev/null || { echo "\tnot a dynamic executable"; exit 1; }\n' \
        "$KOLAPY_RTLD" > "$root/tmp/kolapy-ldd"
    chmod 0755 "$root/tmp/kolapy-ldd"
    export DRACUT_LDD=/tmp/kolapy-ldd
fi
chroot "$root" dracut "$@" --kver "$kver" "/usr/lib/modules/$kver/initramfs.img"
rm -f "$root/tmp/kolapy-ldd"
cp "$root/boot/vmlinuz-$kver" "$root/usr/lib/modules/$kver/vmlinuz"
chroot "$root" systemd-hwdb update --usr
chroot "$root" ldconfig
chroot "$root" dpkg-query -W -f '${Package}\t${Version}\n' > "$pkglist"
