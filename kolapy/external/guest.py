"""What runs in the guest for external tests: small shell scripts delivered by Ignition.

kola ships a Go agent (kolet); kolapy needs none.  :func:`runner_fragment` is
an Ignition fragment, the same for every external test (so machines of tests
with the default config stay interchangeable and can be restored from one
saved machine), that installs under :data:`LIBEXEC`:

``install UNIT TEST EXE DATADIR BUNDLE SHARED``
    unpack the uploaded bundle (the executable and ``data/``), write the test's
    systemd unit as kola writes it and reload systemd;
``start UNIT [MARK]``
    put the autopkgtest helpers into ``/tmp``, write ``/run/kola-runext-env``
    (``AUTOPKGTEST_REBOOT_MARK``) for an exclusive test, start the unit;
``status UNIT``
    ``reboot MARK`` while a reboot request waits for the harness, else the
    unit's ``systemctl show`` properties;
``reboot-request MARK``
    what the autopkgtest helpers call: record MARK and wait for the harness's
    acknowledgement (refused in a non-exclusive test).
"""

from __future__ import annotations

from kolapy.ignition import Ignition

LIBEXEC = "/var/opt/kolapy/ext"
STATE = "/run/kolapy-ext"
ENV_FILE = "/run/kola-runext-env"
UNIT = "kola-runext"
DATA_DIR = "/var/opt/kola/extdata"
_FRAGMENT_VERSION = "3.0.0"

_INSTALL = f"""#!/bin/sh
# kolapy: install one kola external test (as root).
set -eu
unit=$1 test=$2 exe=$3 datadir=$4 bundle=$5 shared=$6
bindir=/usr/local/bin
if ! {{ mkdir -p "$bindir" && touch "$bindir/.kolapy-w"; }} 2>/dev/null; then
    bindir=/var/opt/kolapy/bin
    mkdir -p "$bindir"
fi
rm -f "$bindir/.kolapy-w"
work=$(mktemp -d)
tar -xzf "$bundle" -C "$work"
install -m 0755 "$work/exe" "$bindir/kola-runext-$exe"
rm -rf "$datadir"
mkdir -p "$(dirname "$datadir")"
if [ -d "$work/data" ]; then cp -a "$work/data" "$datadir"; else mkdir -p "$datadir"; fi
rm -rf "$work" "$bundle"
cat > "/etc/systemd/system/$unit" <<EOF
[Unit]
[Service]
RemainAfterExit=yes
EnvironmentFile=-{ENV_FILE}
Environment=KOLA_UNIT=$unit
Environment=KOLA_TEST=$test
Environment=KOLA_TEST_EXE=$exe
Environment=KOLA_EXT_DATA=$datadir
ExecStart=$bindir/kola-runext-$exe
EOF
systemctl daemon-reload
mkdir -p "{STATE}/$unit"
if [ "$shared" = 1 ]; then touch "{STATE}/$unit/deny-reboots"; fi
"""

_START = f"""#!/bin/sh
# kolapy: (re)start one kola external test's unit (as root).
set -eu
unit=$1
state="{STATE}/$unit"
mkdir -p "$state"
rm -f "$state/reboot-request" "$state/reboot-ack"
if [ ! -e "$state/deny-reboots" ]; then
    if [ $# -ge 2 ]; then
        printf "AUTOPKGTEST_REBOOT_MARK='%s'\\n" "$2" > {ENV_FILE}
    else
        rm -f {ENV_FILE}
    fi
fi
install -m 0755 {LIBEXEC}/autopkgtest-reboot /tmp/autopkgtest-reboot
install -m 0755 {LIBEXEC}/autopkgtest-reboot-prepare /tmp/autopkgtest-reboot-prepare
systemctl stop "$unit" 2>/dev/null || true
systemctl reset-failed "$unit" 2>/dev/null || true
systemctl start --no-block "$unit"
"""

_STATUS = f"""#!/bin/sh
# kolapy: where one kola external test is (as root).
unit=$1
if [ -e "{STATE}/$unit/reboot-request" ]; then
    printf 'reboot '
    cat "{STATE}/$unit/reboot-request"
    exit 0
fi
exec systemctl show "$unit" -p ActiveState -p SubState -p Result -p ExecMainCode \\
    -p ExecMainStatus
"""

_REBOOT_REQUEST = f"""#!/bin/sh
# kolapy: ask the harness to follow a reboot (the autopkgtest protocol).
set -eu
mark=${{1:?usage: autopkgtest-reboot MARK}}
unit=${{KOLA_UNIT:?KOLA_UNIT is not set: not running as a kolapy external test}}
state="{STATE}/$unit"
if [ -e "$state/deny-reboots" ]; then
    echo "autopkgtest-reboot: reboots are not allowed in a non-exclusive test" >&2
    exit 1
fi
printf '%s' "$mark" > "$state/reboot-request.tmp"
mv "$state/reboot-request.tmp" "$state/reboot-request"
while [ ! -e "$state/reboot-ack" ]; do sleep 0.2; done
"""

_AUTOPKGTEST_REBOOT = f"""#!/bin/sh
# autopkgtest-reboot MARK: reboot now; the test runs again with AUTOPKGTEST_REBOOT_MARK=MARK.
set -eu
{LIBEXEC}/reboot-request "$@"
systemctl reboot
"""

_AUTOPKGTEST_REBOOT_PREPARE = f"""#!/bin/sh
# autopkgtest-reboot-prepare MARK: the test reboots by itself afterwards; it then runs
# again with AUTOPKGTEST_REBOOT_MARK=MARK.
set -eu
exec {LIBEXEC}/reboot-request "$@"
"""

SCRIPTS: dict[str, str] = {
    "install": _INSTALL,
    "start": _START,
    "status": _STATUS,
    "reboot-request": _REBOOT_REQUEST,
    "autopkgtest-reboot": _AUTOPKGTEST_REBOOT,
    "autopkgtest-reboot-prepare": _AUTOPKGTEST_REBOOT_PREPARE,
}


def runner_fragment() -> Ignition:
    """The Ignition fragment that installs the in-guest scripts (identical for every test)."""
    cfg = Ignition(_FRAGMENT_VERSION)
    for name, text in SCRIPTS.items():
        cfg.add_file(f"{LIBEXEC}/{name}", text, mode=0o755)
    return cfg


def unit_name(slot: int) -> str:
    """kola's unit: ``kola-runext.service`` (exclusive) or ``kola-runext-N.service``."""
    return f"{UNIT}.service" if slot == 0 else f"{UNIT}-{slot}.service"


def data_dir(slot: int) -> str:
    """kola's ``KOLA_EXT_DATA``: ``/var/opt/kola/extdata`` or ``...-N``."""
    return DATA_DIR if slot == 0 else f"{DATA_DIR}-{slot}"


def script(name: str) -> str:
    """The guest path of one of :data:`SCRIPTS`."""
    return f"{LIBEXEC}/{name}"
