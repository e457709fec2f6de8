#!/bin/bash
## kola:
##   description: The reference image boots an ostree deployment with a read-only /usr,
##     the Ignition user and a running systemd.
##   exclusive: false      # read-only checks: share the machine with other such tests
##   platforms: qemu
##   tags: kolapy-example smoke
##   timeoutMin: 5
set -xeuo pipefail

fatal() { echo "FAIL: $*" >&2; exit 1; }

test -e /run/ostree-booted || fatal "not booted from an ostree deployment (/run/ostree-booted missing)"
grep -q 'ostree=' /proc/cmdline || fatal "no ostree= kernel argument: $(cat /proc/cmdline)"
if touch /usr/.kolapy-rw-probe 2>/dev/null; then
    rm -f /usr/.kolapy-rw-probe
    fatal "/usr is writable"
fi
id nest >/dev/null || fatal "the Ignition user nest does not exist"
test -s /home/nest/.ssh/authorized_keys.d/ignition || test -s /var/home/nest/.ssh/authorized_keys.d/ignition \
    || fatal "no Ignition SSH key for nest"
state=$(systemctl is-system-running || true)
[ "$state" = running ] || fatal "system state is $state"
# kola's environment
[ "$KOLA_TEST" = ext.tests_external.basic ] || fatal "KOLA_TEST=$KOLA_TEST"
[ "$KOLA_TEST_EXE" = test.sh ] || fatal "KOLA_TEST_EXE=$KOLA_TEST_EXE"
[ "$(systemctl show -P ActiveState "$KOLA_UNIT")" = active ] || fatal "not running as $KOLA_UNIT"
echo "ok basic"
