"""The ignition.* suite's checks: each passes on a good guest and fails on a wrong one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kolapy.ignition import validate
from kolapy.machine.base import to_shell
from kolapy.result import CommandResult
from kolapy.suites import _ignition_checks as checks
from kolapy.suites import _ignition_configs as cfgs


class Guest:
    """``run``/``succeed`` answered from a table; unknown commands fail (rc 1)."""

    def __init__(self, answers: dict[str, tuple[int, str] | str]) -> None:
        self.answers = dict(answers)

    def run(self, cmd: Any, timeout: float | None = None) -> CommandResult:
        text = to_shell(cmd)
        answer = self.answers.get(text, (1, ""))
        rc, out = (0, answer) if isinstance(answer, str) else answer
        return CommandResult(text, rc, out, "masked" if "wait-online" in text else "", 0.0)

    def succeed(self, cmd: Any, timeout: float | None = None) -> str:
        r = self.run(cmd)
        assert r.rc == 0, f"{r.command} failed"
        return r.stdout

    @property
    def boot_id(self) -> str:
        return self.succeed("cat /proc/sys/kernel/random/boot_id").strip()


SYSTEMD_OK = {
    "cat /run/kolapy-ign-enabled": "from-dropin\n",
    "cat /run/kolapy-ign-inst-bar": "bar\n",
    "sudo -n systemctl start systemd-networkd-wait-online.service": (1, ""),
}


def _expect_failure(check: Any, answers: dict[str, Any], change: dict[str, Any]) -> None:
    check(Guest(answers))  # the good guest passes
    with pytest.raises(AssertionError):
        check(Guest({**answers, **change}))


@pytest.mark.parametrize("change", [
    {"cat /run/kolapy-ign-enabled": "\n"},                        # drop-in lost
    {"cat /run/kolapy-ign-enabled": (1, "")},                     # enabled unit did not run
    {"test -e /run/kolapy-ign-disabled": (0, "")},                # disabled unit ran
    {"cat /run/kolapy-ign-inst-bar": (1, "")},                    # instance did not run
    {"cat /run/kolapy-ign-inst-bar": "foo\n"},                    # wrong instance
    {"sudo -n systemctl start systemd-networkd-wait-online.service": (0, "")},  # not masked
], ids=["dropin", "enabled", "disabled", "instance-ran", "instance-name", "masked"])
def test_systemd_effects_fail(change: dict[str, Any]) -> None:
    _expect_failure(checks.check_systemd_effects, SYSTEMD_OK, change)


HOST_OK = {"cat /proc/sys/kernel/hostname": f"{cfgs.HOSTNAME}\n",
           "hostnamectl --static 2>/dev/null || cat /etc/hostname": f"{cfgs.HOSTNAME}\n"}


@pytest.mark.parametrize("key", list(HOST_OK))
def test_hostname_fails(key: str) -> None:
    _expect_failure(lambda g: checks.check_hostname(g, cfgs.HOSTNAME), HOST_OK,
                    {key: "localhost\n"})


DISK, MOUNT, LABEL = cfgs.DATA_DISK, cfgs.DATA_MOUNT, cfgs.DATA_LABEL
STORAGE_OK = {
    f"readlink -f {DISK}": "/dev/vdb\n",
    f"findmnt -n -o SOURCE {MOUNT}": "/dev/vdb\n",
    "lsblk -n -d -o FSTYPE /dev/vdb": "ext4\n",
    "lsblk -n -d -o LABEL /dev/vdb": f"{LABEL}\n",
    f"cat {MOUNT}/from-ignition": "x",
    f"cat {MOUNT}/kolapy-token": "abc\n",
}


@pytest.mark.parametrize("change", [
    {f"findmnt -n -o SOURCE {MOUNT}": "/dev/vda4\n"},
    {"lsblk -n -d -o FSTYPE /dev/vdb": "xfs\n"},
    {"lsblk -n -d -o LABEL /dev/vdb": "other\n"},
    {f"cat {MOUNT}/from-ignition": (1, "")},
    {f"cat {MOUNT}/kolapy-token": "def\n"},
], ids=["source", "fstype", "label", "ignition-file", "lost-data"])
def test_storage_fails(change: dict[str, Any]) -> None:
    _expect_failure(lambda g: checks.check_storage(g, DISK, MOUNT, LABEL, token="abc"),
                    STORAGE_OK, change)


def test_storage_writes_a_token() -> None:
    answers: dict[str, Any] = dict(STORAGE_OK)
    guest = Guest(answers)
    written: list[str] = []
    real_succeed = guest.succeed

    def succeed(cmd: Any, timeout: float | None = None) -> str:
        text = to_shell(cmd)
        if "tee" in text:
            written.append(text)
            return ""
        return real_succeed(cmd)

    guest.succeed = succeed  # type: ignore[method-assign]
    token = checks.check_storage(guest, DISK, MOUNT, LABEL)
    assert written and token in written[0]


IGN_JOURNAL = "sudo -n journalctl -b -o cat -t ignition --no-pager | head -n 5"
ONCE1_OK = {
    "cat /proc/cmdline": "root=x ignition.firstboot ignition.platform.id=qemu\n",
    IGN_JOURNAL: "Ignition 2.14.0\n",
    f"test -s {cfgs.ONCE_MARKER}": "",
    f"cat {cfgs.ONCE_LOG}": "ran\n",
}


@pytest.mark.parametrize("change", [
    {"cat /proc/cmdline": "root=x\n"},
    {IGN_JOURNAL: ""},
    {f"test -s {cfgs.ONCE_MARKER}": (1, "")},
    {f"cat {cfgs.ONCE_LOG}": "ran\nran\n"},
], ids=["no-firstboot", "no-journal", "no-marker", "log"])
def test_once_first_boot_fails(change: dict[str, Any]) -> None:
    _expect_failure(lambda g: checks.check_once_first_boot(g, cfgs.ONCE_MARKER, cfgs.ONCE_LOG),
                    ONCE1_OK, change)


OLD_BOOT = "11111111-1111-1111-1111-111111111111"
ONCE2_OK = {
    "cat /proc/sys/kernel/random/boot_id": "22222222-2222-2222-2222-222222222222\n",
    "cat /proc/cmdline": "root=x\n",
    IGN_JOURNAL: "",
    f"cat {cfgs.ONCE_LOG}": "changed\n",
}


@pytest.mark.parametrize("change", [
    {"cat /proc/sys/kernel/random/boot_id": OLD_BOOT + "\n"},
    {"cat /proc/cmdline": "root=x ignition.firstboot\n"},
    {IGN_JOURNAL: "Ignition 2.14.0\n"},
    {f"test -e {cfgs.ONCE_MARKER}": (0, "")},
    {f"cat {cfgs.ONCE_LOG}": "changed\nran\n"},
], ids=["same-boot", "firstboot-left", "ignition-ran", "marker-back", "appended-again"])
def test_once_second_boot_fails(change: dict[str, Any]) -> None:
    _expect_failure(
        lambda g: checks.check_once_second_boot(g, OLD_BOOT, cfgs.ONCE_MARKER, cfgs.ONCE_LOG),
        ONCE2_OK, change)


STUB = "/usr/lib/dracut/modules.d/30ignition/ignition-kargs-helper.sh"
STUB_GREP = f"grep -qs 'not supported by this Linux distribution' {STUB}"
OWN_GREP = ("grep -ls ignition-kargs-helper /usr/lib/dracut/modules.d/*/module-setup.sh"
            " | grep -v /30ignition/")


def test_kargs_support_probe() -> None:
    missing = checks.kargs_unsupported(Guest({STUB_GREP: ""}))
    assert "ignition-kargs-helper" in missing and "placeholder" in missing
    assert checks.kargs_unsupported(Guest({STUB_GREP: "", OWN_GREP: "/x/module-setup.sh\n"})) == ""
    assert checks.kargs_unsupported(Guest({})) == ""  # no upstream stub: a real helper


def test_mismatch_assertion_lists_problems() -> None:
    checks.assert_no_mismatch([])
    with pytest.raises(AssertionError, match="mode 0644"):
        checks.assert_no_mismatch(["/x: mode 0644, expected 0640"])


def test_configs_are_valid_and_stable(tmp_path: Path) -> None:
    for make in (cfgs.shared_config, cfgs.storage_config, cfgs.once_config):
        assert make() == make(), f"{make.__name__} differs between calls (shared key unstable)"
        assert validate(make()) == []
    key = cfgs.user_key(tmp_path)
    assert key.public_openssh == cfgs.user_public_key()
    assert (tmp_path / "id_kolapy_ign").stat().st_mode & 0o777 == 0o600
    storage = cfgs.storage_config().to_dict()
    units = {u["name"]: u for u in storage["systemd"]["units"]}
    assert "var-mnt-data.mount" in units and units["var-mnt-data.mount"]["enabled"] is True


REMOTE_OK = {
    f"cat {cfgs.REMOTE_DIR}/replaced": "from replaced\n",
    f"cat {cfgs.REMOTE_DIR}/merged-plain": "from merged-plain\n",
    f"cat {cfgs.REMOTE_DIR}/merged-hashed": "from merged-hashed\n",
}


@pytest.mark.parametrize("change", [
    {f"cat {cfgs.REMOTE_DIR}/replaced": (1, "")},
    {f"cat {cfgs.REMOTE_DIR}/merged-hashed": (1, "")},
    {f"cat {cfgs.REMOTE_DIR}/merged-plain": "from elsewhere\n"},
    {f"test -e {cfgs.REMOTE_DIR}/replaced-away": (0, "")},
], ids=["not-replaced", "hashed-merge-lost", "wrong-content", "base-applied"])
def test_remote_fails(change: dict[str, Any]) -> None:
    _expect_failure(lambda g: checks.check_remote(
        g, cfgs.REMOTE_DIR, ["replaced", "merged-plain", "merged-hashed"], ["replaced-away"]),
        REMOTE_OK, change)


def test_kargs_check_fails_without_the_argument() -> None:
    _expect_failure(lambda g: checks.check_kargs(g, "kolapy.x=1"),
                    {"cat /proc/cmdline": "root=x kolapy.x=1\n"}, {"cat /proc/cmdline": "root=x\n"})
