#!/bin/bash
## kola:
##   description: Kernel arguments (every boot and first boot only), machine options
##     (memory, disk size, an extra disk, an extra NIC) and two reboots, one of each
##     autopkgtest form.
##   appendKernelArgs: kolapy.everyboot=1
##   appendFirstbootKernelArgs: kolapy.firstboot=1
##   minMemory: 2304
##   minDisk: 6
##   additionalDisks: ["1G:serial=kolaextra"]
##   additionalNics: 1
##   timeoutMin: 30
set -xeuo pipefail
fatal() { echo "FAIL: $*" >&2; exit 1; }
runs=/var/lib/kolapy-machine-example
cmdline=$(cat /proc/cmdline)
boot=$(cat /proc/sys/kernel/random/boot_id)
grep -qw kolapy.everyboot=1 /proc/cmdline || fatal "appendKernelArgs missing: $cmdline"
case "${AUTOPKGTEST_REBOOT_MARK:-}" in
"")
    grep -qw kolapy.firstboot=1 /proc/cmdline || fatal "appendFirstbootKernelArgs missing on the first boot: $cmdline"
    mem_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    [ "$mem_kib" -gt $((2048 * 1024)) ] || fatal "minMemory 2304: MemTotal is only $mem_kib KiB"
    root_disk=$(lsblk -ndo PKNAME "$(findmnt -nvo SOURCE /sysroot 2>/dev/null || findmnt -nvo SOURCE /)")
    size=$(lsblk -bndo SIZE "/dev/$root_disk")
    [ "$size" -ge $((6 * 1024 * 1024 * 1024)) ] || fatal "minDisk 6: /dev/$root_disk has $size bytes"
    [ -e /dev/disk/by-id/virtio-kolaextra ] || fatal "additionalDisks: no disk with serial kolaextra: $(ls /dev/disk/by-id)"
    nics=$(ls /sys/class/net | grep -cv '^lo$')
    [ "$nics" -ge 2 ] || fatal "additionalNics 1: only $nics NIC(s)"
    echo "$boot" > "$runs"
    echo "rebooting with autopkgtest-reboot"
    /tmp/autopkgtest-reboot mark1
    ;;
mark1)
    ! grep -qw kolapy.firstboot=1 /proc/cmdline || fatal "first-boot kernel argument on a later boot: $cmdline"
    grep -qx "$boot" "$runs" && fatal "mark1 runs in the first boot ($boot)"
    echo "$boot" >> "$runs"
    echo "rebooting by itself after autopkgtest-reboot-prepare"
    /tmp/autopkgtest-reboot-prepare mark2
    systemctl reboot
    ;;
mark2)
    grep -qx "$boot" "$runs" && fatal "mark2 runs in an earlier boot ($boot)"
    echo "$boot" >> "$runs"
    [ "$(sort -u "$runs" | wc -l)" = 3 ] || fatal "expected 3 distinct boots: $(cat "$runs")"
    echo "ok machine: 3 boots"
    ;;
*)
    fatal "unexpected mark $AUTOPKGTEST_REBOOT_MARK"
    ;;
esac
