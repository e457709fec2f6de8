#!/bin/sh
# mmdebstrap essential hook for the kolapy reference image: runs on the host once the
# essential packages are installed, before the image's own packages.
# $1 = the root; $2 = the Python running kolapy for a foreign-arch build, else "";
# then, for a foreign-arch build only, the packages to install.
set -eu
root=$1
python=$2
shift 2

# Helpers that maintainer scripts call and that are slow under qemu-user (perl
# start-up, a shell loop forking per certificate) are stubs while packages install;
# customize.sh puts the real ones back and runs them natively.  The
# deb-systemd-helper stub records its calls, which customize.sh replays.
for f in /usr/bin/deb-systemd-helper /usr/bin/deb-systemd-invoke /usr/sbin/update-ca-certificates; do
    chroot "$root" dpkg-divert --quiet --local --rename --divert "$f.kolapy-real" --add "$f"
done
printf '#!/bin/sh\necho "$DPKG_MAINTSCRIPT_PACKAGE $*" >> /var/lib/kolapy-deb-systemd-helper.calls\n' \
    > "$root/usr/bin/deb-systemd-helper"
printf '#!/bin/sh\nexit 0\n' > "$root/usr/bin/deb-systemd-invoke"
printf '#!/bin/sh\nexit 0\n' > "$root/usr/sbin/update-ca-certificates"
chmod 0755 "$root/usr/bin/deb-systemd-helper" "$root/usr/bin/deb-systemd-invoke" \
    "$root/usr/sbin/update-ca-certificates"

[ -n "$python" ] || exit 0
# Foreign arch: dpkg runs emulated, and decompressing data.tar.xz is most of its
# unpack time.  Download natively, decompress natively (debrepack), then install the
# repacked files (apt strips the root prefix from their paths for dpkg inside).
export APT_CONFIG="$MMDEBSTRAP_APT_CONFIG"
# Only this download in the archive dir (earlier hooks may have left .debs there).
rm -f "$root"/var/cache/apt/archives/*.deb
apt-get --yes --download-only install "$@"
"$python" -m kolapy.refimage.debrepack "$root/var/cache/apt/archives"
env -u TMPDIR apt-get --yes -o "DPkg::Chroot-Directory=$root" install \
    "$root"/var/cache/apt/archives/*.deb
rm -f "$root"/var/cache/apt/archives/*.deb
