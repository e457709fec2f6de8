#!/bin/bash
## kola:
##   exclusive: false
##   description: Non-exclusive test two; shares one machine with the other
##     non-exclusive tests, in its own unit and data directory.
set -xeuo pipefail
case "$KOLA_UNIT" in
    kola-runext-[0-9]*.service) ;;
    *) echo "FAIL: a non-exclusive test runs as kola-runext-N.service, not $KOLA_UNIT" >&2; exit 1;;
esac
# Reboots are refused in a shared machine.
if /tmp/autopkgtest-reboot-prepare never 2>/dev/null; then
    echo "FAIL: a non-exclusive test was allowed to ask for a reboot" >&2; exit 1
fi
echo "$KOLA_TEST $(cat /proc/sys/kernel/random/boot_id)" | tee -a /var/tmp/kolapy-nonexclusive-runs
echo "ok two"
