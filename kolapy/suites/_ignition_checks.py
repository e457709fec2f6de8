"""Checks of the ``ignition.*`` suite that go beyond "the config's nodes are there".

Each takes a :class:`~kolapy.machine.base.Machine` (anything with ``run``/``succeed``)
and raises ``AssertionError`` naming what differs, so unit tests can drive them with
a fake machine and show every one of them failing.
"""

from __future__ import annotations

import re
import secrets
import shlex
from typing import Any

from kolapy.transport.ssh import SSHConnection, SSHKeyPair


def assert_no_mismatch(problems: list[str]) -> None:
    """Fail with every difference :func:`kolapy.ignition.verify.mismatches` found."""
    assert not problems, "the machine differs from its Ignition config:\n  " + "\n  ".join(
        problems)


def check_user_login(machine: Any, key: SSHKeyPair, user: str, home: str) -> None:
    """``user`` logs in over SSH with ``key`` (its own, from Ignition) and lands in ``home``."""
    host_key = machine.host_key.public_openssh if getattr(machine, "host_key", None) else None
    ssh = SSHConnection(getattr(machine, "ssh_host", "127.0.0.1"), machine.ssh_port, user, key,
                        host_key)
    try:
        ssh.connect(deadline=machine.scaled(30.0), attempt_timeout=machine.scaled(10.0))
        result = ssh.execute("id -un; pwd", machine.scaled(30.0))
    finally:
        ssh.close()
    assert result.rc == 0, f"{user} logged in but 'id -un; pwd' failed: {result.stderr}"
    lines = result.stdout.split()
    assert lines == [user, home], f"{user} over SSH: expected [{user!r}, {home!r}], got {lines}"


def check_systemd_effects(machine: Any) -> None:
    """The units did what their states promise: enabled ones ran (with their drop-in),
    the disabled one did not, the masked one cannot start, the instance got ``%i``."""
    enabled = machine.run("cat /run/kolapy-ign-enabled")
    assert enabled.rc == 0, "kolapy-ign-enabled.service did not run at boot"
    assert enabled.stdout.strip() == "from-dropin", (
        f"the drop-in's Environment= did not reach the unit: {enabled.stdout.strip()!r}")
    ran = machine.run("test -e /run/kolapy-ign-disabled")
    assert ran.rc != 0, "the disabled unit kolapy-ign-disabled.service ran at boot"
    instance = machine.run("cat /run/kolapy-ign-inst-bar")
    assert instance.rc == 0, "the enabled instance kolapy-ign-inst@bar.service did not run"
    assert instance.stdout.strip() == "bar", f"instance name {instance.stdout.strip()!r} != 'bar'"
    start = machine.run("sudo -n systemctl start systemd-networkd-wait-online.service")
    assert start.rc != 0 and "masked" in (start.stderr + start.stdout), (
        "the masked unit started (or failed for another reason): "
        f"rc {start.rc}, {start.stderr.strip()!r}")


def check_hostname(machine: Any, expected: str) -> None:
    """The kernel's and systemd's hostname is the one Ignition wrote."""
    kernel = machine.succeed("cat /proc/sys/kernel/hostname").strip()
    assert kernel == expected, f"hostname is {kernel!r}, expected {expected!r}"
    static = machine.succeed("hostnamectl --static 2>/dev/null || cat /etc/hostname").strip()
    assert static == expected, f"static hostname is {static!r}, expected {expected!r}"


_STUB_TEXT = "not supported by this Linux distribution"


def kargs_unsupported(machine: Any) -> str:
    """Why the image cannot apply Ignition's ``kernelArguments`` ("" when it can).

    Ignition's kargs stage calls ``ignition-kargs-helper``, which the distribution
    must provide; upstream's placeholder (what Debian ships) always fails.  An image
    whose dracut modules install a helper of their own supports kernel arguments.
    """
    stub = "/usr/lib/dracut/modules.d/30ignition/ignition-kargs-helper.sh"
    has_stub = machine.run(f"grep -qs {shlex.quote(_STUB_TEXT)} {stub}").rc == 0
    own = machine.run(
        "grep -ls ignition-kargs-helper /usr/lib/dracut/modules.d/*/module-setup.sh"
        " | grep -v /30ignition/").stdout.strip()
    if has_stub and not own:
        return (f"the image cannot apply Ignition kernelArguments: its ignition-kargs-helper "
                f"is upstream's placeholder ({stub}: '{_STUB_TEXT}') and no dracut module "
                "installs a real one")
    return ""


def check_storage(machine: Any, disk: str, mount: str, label: str,
                  token: str | None = None) -> str:
    """The extra disk carries an ext4 filesystem labelled ``label``, mounted at ``mount``.

    Without ``token``, write a fresh one there (and return it); with it, the file
    written before the reboot must still hold it.
    """
    device = machine.succeed(["readlink", "-f", disk]).strip()
    source = machine.succeed(["findmnt", "-n", "-o", "SOURCE", mount]).strip()
    assert source == device, f"{mount} is mounted from {source!r}, not the extra disk {device}"
    fstype = machine.succeed(["lsblk", "-n", "-d", "-o", "FSTYPE", device]).strip()
    fslabel = machine.succeed(["lsblk", "-n", "-d", "-o", "LABEL", device]).strip()
    assert (fstype, fslabel) == ("ext4", label), (
        f"{device}: filesystem {fstype} labelled {fslabel!r}, expected ext4 {label!r}")
    from_ignition = machine.run(["cat", f"{mount}/from-ignition"])
    assert from_ignition.rc == 0, f"the file Ignition wrote into {mount} is missing"
    stamp = f"{mount}/kolapy-token"
    if token is None:
        token = secrets.token_hex(8)
        machine.succeed(f"echo {token} | sudo -n tee {stamp} >/dev/null && sync")
        return token
    kept = machine.run(["cat", stamp]).stdout.strip()
    assert kept == token, f"{stamp} holds {kept!r} after the reboot, expected {token!r}"
    return token


def _ignition_ran_this_boot(machine: Any) -> bool:
    out = machine.succeed("sudo -n journalctl -b -o cat -t ignition --no-pager | head -n 5")
    return bool(out.strip())


def check_once_first_boot(machine: Any, marker: str, log: str) -> None:
    """The first boot: Ignition ran (journal, kernel argument) and wrote its files."""
    cmdline = machine.succeed("cat /proc/cmdline").split()
    assert "ignition.firstboot" in cmdline, f"no ignition.firstboot on the first boot: {cmdline}"
    assert _ignition_ran_this_boot(machine), "no Ignition messages in the first boot's journal"
    machine.succeed(["test", "-s", marker])
    runs = machine.succeed(["cat", log])
    assert runs == "ran\n", f"{log} after the first boot: {runs!r}, expected 'ran\\n'"


def check_once_second_boot(machine: Any, old_boot_id: str, marker: str, log: str) -> None:
    """After the reboot: a new boot, no ignition.firstboot, Ignition did not run again."""
    boot_id = machine.boot_id
    assert re.fullmatch(r"[0-9a-f-]{36}", boot_id), f"odd boot_id {boot_id!r}"
    assert boot_id != old_boot_id, "the boot_id did not change: no reboot happened"
    cmdline = machine.succeed("cat /proc/cmdline").split()
    assert "ignition.firstboot" not in cmdline, (
        f"ignition.firstboot was not consumed: still on the kernel command line {cmdline}")
    assert not _ignition_ran_this_boot(machine), "Ignition ran again on the second boot"
    assert machine.run(["test", "-e", marker]).rc != 0, f"{marker} came back: Ignition re-ran"
    runs = machine.succeed(["cat", log])
    assert runs == "changed\n", f"{log} after the reboot: {runs!r}: Ignition appended again"


def check_remote(machine: Any, directory: str, present: list[str], absent: list[str]) -> None:
    """Each file in ``present`` holds ``from <name>`` (the config that wrote it was
    fetched and applied); none in ``absent`` exists (its config was replaced)."""
    for name in present:
        have = machine.run(["cat", f"{directory}/{name}"])
        assert have.rc == 0, f"{directory}/{name} missing: the config writing it was not applied"
        assert have.stdout == f"from {name}\n", f"{directory}/{name}: {have.stdout!r}"
    for name in absent:
        assert machine.run(["test", "-e", f"{directory}/{name}"]).rc != 0, (
            f"{directory}/{name} exists: the replaced config was applied too")


def check_kargs(machine: Any, karg: str) -> None:
    """``karg`` is on the running kernel's command line."""
    cmdline = machine.succeed("cat /proc/cmdline").split()
    assert karg in cmdline, f"{karg} not on the kernel command line: {cmdline}"
