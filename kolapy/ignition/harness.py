"""The Ignition fragment the harness merges into every test's config."""

from __future__ import annotations

from kolapy.distro import Distro, get_distro
from kolapy.ignition.config import Ignition

JOURNAL_PORT = "kolapy.journal"
"""virtio-serial port name the running system streams its journal to."""

JOURNAL_UNIT = "kolapy-journal.service"

FRAGMENT_VERSION = "3.0.0"
"""Oldest spec, so merging the fragment never raises a test config's version."""

_EXEC = (
    "/bin/sh -c 'exec journalctl -b -f --no-tail -o json --cursor-file=/run/kolapy-journal.cursor"
    f" > /dev/virtio-ports/{JOURNAL_PORT}'"
)

_JOURNAL_UNIT_TEXT = f"""\
[Unit]
Description=kolapy: stream the journal to the test harness
# Only under kolapy: the port exists when the harness asked QEMU for it.
ConditionPathExists=/dev/virtio-ports/{JOURNAL_PORT}
After=systemd-journald.service
# Stop only after the login sessions have (shutdown reverses this order): the
# last entries of a boot, such as the reboot a test requested, reach the harness.
Before=systemd-user-sessions.service ssh.service sshd.service
# Never give up restarting: losing the stream hides the test's evidence.
StartLimitIntervalSec=0

[Service]
Type=simple
# The cursor file (in /run: forgotten on reboot) makes a restart resume where
# the last run stopped instead of re-sending the whole boot.
ExecStart={_EXEC}
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
"""


def harness_fragment(distro: Distro | str, ssh_pubkey: str) -> Ignition:
    """The harness's own config: ``ssh_pubkey`` for the distro's user, and the journal unit.

    Merge it as the *child*: ``test_config.merge(harness_fragment(...))``.
    SSH keys append, so a test's own keys for the same user survive; the
    harness only owns ``kolapy-journal.service``.
    """
    d = get_distro(distro) if isinstance(distro, str) else distro
    return (
        Ignition(FRAGMENT_VERSION)
        .add_ssh_key(d.ssh_user, ssh_pubkey)
        .add_unit(JOURNAL_UNIT, _JOURNAL_UNIT_TEXT, enabled=True)
    )
