#!/bin/bash
# kolapy reference image glue between Debian's Ignition (30ignition) and ostree
# (98ostree) in the initramfs, plus the NestOS-style emergency journal dump.

check() {
    # Only when asked for (dracut.conf.d/50-kolapy.conf).
    return 255
}

depends() {
    echo ignition ostree systemd
}

install() {
    inst_multiple mountpoint dirname touch mount umount rm rmdir mkdir cat sleep \
        readlink journalctl modprobe ip sort head basename findmnt sfdisk partx resize2fs
    # The NestOS user and its groups, as NestOS's base config (40ignition-conf) has them.
    inst_simple "$moddir/00-nest.ign" /usr/lib/ignition/base.d/00-nest.ign
    # Debian's Ignition relabels for SELinux after the files stage; there is no
    # SELinux here, so setfiles is a no-op (FACTS 1).
    inst_script "$moddir/noop-setfiles" /usr/sbin/setfiles
    inst_script "$moddir/kolapy-mount-var" /usr/sbin/kolapy-mount-var
    inst_script "$moddir/kolapy-dump-journal" /usr/sbin/kolapy-dump-journal
    inst_script "$moddir/kolapy-firstboot-complete" /usr/sbin/kolapy-firstboot-complete
    inst_script "$moddir/kolapy-neednet" /usr/sbin/kolapy-neednet
    inst_script "$moddir/ignition-ostree-growfs" /usr/sbin/ignition-ostree-growfs
    local u
    for u in kolapy-mount-var.service kolapy-dump-journal.service \
             kolapy-firstboot-complete.service kolapy-neednet.service \
             ignition-ostree-growfs.service; do
        inst_simple "$moddir/$u" "$systemdsystemunitdir/$u"
    done
    # The mount stage relabels too (a filesystem with a path: Butane's with_mount_unit).
    local stage
    for stage in mount files; do
        inst_simple "$moddir/ignition-files-selinux.conf" \
            "$systemdsystemunitdir/ignition-$stage.service.d/10-kolapy-selinux.conf"
    done
    mkdir -p "$initdir$systemdsystemunitdir/ignition-diskful.target.requires" \
             "$initdir$systemdsystemunitdir/ignition-complete.target.requires" \
             "$initdir$systemdsystemunitdir/emergency.target.wants"
    ln_r "$systemdsystemunitdir/kolapy-mount-var.service" \
        "$systemdsystemunitdir/ignition-diskful.target.requires/kolapy-mount-var.service"
    ln_r "$systemdsystemunitdir/kolapy-firstboot-complete.service" \
        "$systemdsystemunitdir/ignition-complete.target.requires/kolapy-firstboot-complete.service"
    # The root grows on the first boot only, in the initramfs, as on NestOS/FCOS.
    ln_r "$systemdsystemunitdir/ignition-ostree-growfs.service" \
        "$systemdsystemunitdir/ignition-complete.target.requires/ignition-ostree-growfs.service"
    # Skipped (condition) unless ignition-fetch-offline asked for the network.
    ln_r "$systemdsystemunitdir/kolapy-neednet.service" \
        "$systemdsystemunitdir/ignition-complete.target.requires/kolapy-neednet.service"
    ln_r "$systemdsystemunitdir/kolapy-dump-journal.service" \
        "$systemdsystemunitdir/emergency.target.wants/kolapy-dump-journal.service"
}
