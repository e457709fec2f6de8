"""kola tests ``ignition.*``: what Ignition does on the first boot, checked on the machine.

Sharing (CI cost): ``files``, ``passwd``, ``systemd``, ``hostname`` and the ``kargs``
probe never reboot, so they share ONE machine booted with their configs merged
(:func:`~kolapy.suites._ignition_configs.shared_config`).  ``storage`` and ``once``
reboot and get a machine each; ``remote`` boots one machine whose config is fetched
from the host; each ``failure`` case is a boot that must stop in the initramfs.

Expectations are derived from the configs (:mod:`kolapy.ignition.verify`), never
written twice.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from kolapy import Machine, expect_boot_failure, kola
from kolapy.ignition import Ignition
from kolapy.ignition.verify import GuestProbe, mismatches
from kolapy.suites import _ignition_configs as cfgs
from kolapy.suites._ignition_checks import (
    assert_no_mismatch,
    check_hostname,
    check_kargs,
    check_once_first_boot,
    check_once_second_boot,
    check_remote,
    check_storage,
    check_systemd_effects,
    check_user_login,
    kargs_unsupported,
)

SHARED = cfgs.shared_config()
DETECT_WITHIN_S = 60.0
"""Seconds from Ignition's failure to kolapy's report, at most (the issue's bound)."""


@kola(name="ignition.files", ignition=SHARED, exclusive=False, tags=["ignition"],
      description="files (inline, data: URLs, gzip, appended), directories, links, overwrite")
def test_files(machine: Machine) -> None:
    assert_no_mismatch(mismatches(GuestProbe(machine), cfgs.files_config(), ("storage",)))


@kola(name="ignition.passwd", ignition=SHARED, exclusive=False, tags=["ignition"],
      description="users and groups with ids, home, shell, groups, SSH keys; the user logs in")
def test_passwd(machine: Machine, tmp_path: Path) -> None:
    assert_no_mismatch(mismatches(GuestProbe(machine), cfgs.passwd_config(), ("passwd",)))
    check_user_login(machine, cfgs.user_key(tmp_path), cfgs.USER, cfgs.USER_HOME)


@kola(name="ignition.systemd", ignition=SHARED, exclusive=False, tags=["ignition"],
      description="units enabled, disabled, masked, with drop-ins; an enabled instance")
def test_systemd(machine: Machine) -> None:
    assert_no_mismatch(mismatches(GuestProbe(machine), cfgs.systemd_config(), ("systemd",)))
    check_systemd_effects(machine)


@kola(name="ignition.hostname", ignition=SHARED, exclusive=False, tags=["ignition"],
      description="the hostname from /etc/hostname written by Ignition")
def test_hostname(machine: Machine) -> None:
    check_hostname(machine, cfgs.HOSTNAME)


@kola(name="ignition.kargs", ignition=SHARED, exclusive=False, tags=["ignition"],
      description="kernel arguments from Ignition (where the image supports them)")
def test_kargs(machine: Machine, machine_factory: Any) -> None:
    missing = kargs_unsupported(machine)
    if missing:
        pytest.skip(missing)
    karg = "kolapy.ignition_karg=1"
    cfg = Ignition().add_kernel_arguments(should_exist=[karg])
    check_kargs(machine_factory(ignition=cfg), karg)


@kola(name="ignition.storage", ignition=cfgs.storage_config(), tags=["ignition"],
      additional_disks=[f"1G:serial={cfgs.DATA_SERIAL}"],
      description="a labelled filesystem on an extra disk, mounted by a unit; survives reboot")
def test_storage(machine: Machine) -> None:
    assert_no_mismatch(mismatches(GuestProbe(machine), cfgs.storage_config(), ("systemd",)))
    token = check_storage(machine, cfgs.DATA_DISK, cfgs.DATA_MOUNT, cfgs.DATA_LABEL)
    old = machine.boot_id
    machine.reboot()
    assert machine.boot_id != old, "the machine did not reboot"
    check_storage(machine, cfgs.DATA_DISK, cfgs.DATA_MOUNT, cfgs.DATA_LABEL, token=token)


@kola(name="ignition.once", ignition=cfgs.once_config(), tags=["ignition"],
      description="Ignition runs on the first boot only; ignition.firstboot is consumed")
def test_once(machine: Machine) -> None:
    check_once_first_boot(machine, cfgs.ONCE_MARKER, cfgs.ONCE_LOG)
    machine.succeed(["sudo", "-n", "rm", cfgs.ONCE_MARKER])
    machine.succeed(f"echo changed | sudo -n tee {shlex.quote(cfgs.ONCE_LOG)}")
    old = machine.boot_id
    machine.reboot()
    check_once_second_boot(machine, old, cfgs.ONCE_MARKER, cfgs.ONCE_LOG)


@kola(name="ignition.remote", tags=["ignition"],
      description="config replace and merge over HTTP from the host, with and without a hash")
def test_remote(machine_factory: Any, host_http: Any, tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    merged_plain = cfgs.remote_piece("merged-plain").to_json().encode()
    merged_hashed = cfgs.remote_piece("merged-hashed").to_json().encode()
    (served / "merge-plain.ign").write_bytes(merged_plain)
    (served / "merge-hashed.ign").write_bytes(merged_hashed)
    url = "http://10.0.2.100:8080"
    # The fw_cfg config is replaced by replace.ign; its own file must never appear.
    base = (Ignition().add_file(f"{cfgs.REMOTE_DIR}/replaced-away", "must not exist\n")
            .to_dict())
    base["ignition"]["config"] = {"replace": {"source": f"{url}/replace.ign"}}

    def serve(machine: Any) -> None:
        # The replacing config is the machine's whole config (the harness's SSH key
        # and journal unit included) minus the replace, plus the two merges.
        full = json.loads(json.dumps(machine.ignition))
        full["ignition"]["config"] = {"merge": [
            {"source": f"{url}/merge-plain.ign"},
            {"source": f"{url}/merge-hashed.ign",
             "verification": {"hash": cfgs.sha512(merged_hashed)}},
        ]}
        full["storage"]["files"] = [f for f in full["storage"]["files"]
                                    if not f["path"].startswith(cfgs.REMOTE_DIR)]
        full = Ignition.from_dict(full).add_file(f"{cfgs.REMOTE_DIR}/replaced", "from replaced\n")
        (served / "replace.ign").write_text(full.to_json())
        host_http(served, machine)

    machine = machine_factory(ignition=base, on_start=serve)
    check_remote(machine, cfgs.REMOTE_DIR, ["replaced", "merged-plain", "merged-hashed"],
                 ["replaced-away"])


# --------------------------------------------------------------------------- failures

_UNREACHABLE = "http://10.0.2.100:8081/nothing-serves-this.ign"


def _failure_config(case: str, served: Path) -> dict[str, Any]:
    cfg = Ignition().to_dict()
    if case == "unwritable-path":
        # /etc/passwd is a file: nothing can be created under it.
        cfg = Ignition().add_file("/etc/passwd/kolapy-cannot-write", "x\n").to_dict()
    elif case == "unreachable-remote":
        cfg["ignition"]["config"] = {"merge": [{"source": _UNREACHABLE}]}
        cfg["ignition"]["timeouts"] = {"httpTotal": 10}
    elif case == "bad-hash":
        piece = cfgs.remote_piece("tampered").to_json().encode()
        (served / "piece.ign").write_bytes(piece)
        cfg["ignition"]["config"] = {"merge": [{
            "source": "http://10.0.2.100:8080/piece.ign",
            "verification": {"hash": cfgs.sha512(piece + b"tampered")}}]}
        # Bounded: an image that cannot reach the server fails fast instead of retrying.
        cfg["ignition"]["timeouts"] = {"httpTotal": 30}
    return cfg


FAILURES = {
    # case: (the stage that must fail, Ignition's error in the initramfs journal; never
    # text of the config itself, which Ignition logs too)
    "unwritable-path": ("files", r"kolapy-cannot-write: not a directory"),
    "unreachable-remote": ("fetch", r'GET error: Get "http://10\.0\.2\.100:8081/nothing-serves'),
    "bad-hash": ("fetch", r"hash verification failed \(calculated [0-9a-f]+ but expected"),
}


@kola(name="ignition.failure", tags=["ignition"], flags=["no_emergency_shell_check"],
      description="configs that must stop the boot are reported as an emergency at once")
@pytest.mark.parametrize("case", list(FAILURES))
def test_failure(case: str, machine_factory: Any, host_http: Any, tmp_path: Path,
                 record_property: Any) -> None:
    stage, pattern = FAILURES[case]
    cfg = _failure_config(case, tmp_path)
    on_start = (lambda m: host_http(tmp_path, m)) if case == "bad-hash" else None
    with expect_boot_failure(stage=stage, match=pattern, within=DETECT_WITHIN_S) as failure:
        machine_factory(ignition=cfg, on_start=on_start)
    record_property("kola_note", failure.summary())
