"""kola's ostree tests: status, upgrade + rollback, remote, hotfix, unlock.

Written against :mod:`kolapy.updates`, so they run unchanged on rpm-ostree
(NestOS) and plain ``ostree admin`` (the reference image).  Every reboot goes
through ``machine.reboot()`` (a new boot_id or the test fails); the machine's
artifacts keep each boot's console and journal as ``console.boot<N>.txt`` and
``journal.boot<N>.txt``.
"""

from __future__ import annotations

from typing import Any

import pytest

from kolapy import Machine, kola
from kolapy.updates import Status, Updater, make_commit, updater_for

#: The file the test commits add under /usr (part of the new commit only).
NEW_FILE = "/usr/share/kolapy-test/added-by-update"


def _status_text(status: Status) -> str:
    return "\n".join(
        f"  {'*' if d.booted else ' '} {d.checksum}.{d.serial} version={d.version} "
        f"origin={d.origin} unlocked={d.unlocked}"
        for d in status.deployments
    )


def _booted_is(updater: Updater, checksum: str, version: str | None) -> Status:
    status = updater.status()
    booted = status.booted
    assert booted.checksum == checksum, (
        f"booted {booted.checksum}, expected {checksum}:\n{_status_text(status)}"
    )
    if version is not None:
        assert booted.version == version, f"booted version {booted.version!r}, expected {version!r}"
    return status


def _read(machine: Machine, path: str) -> str | None:
    """The file's text, or None when it does not exist."""
    result = machine.run(["sudo", "-n", "cat", path])
    return result.stdout if result.succeeded else None


def _write(machine: Machine, path: str, text: str) -> None:
    machine.succeed(f"printf '%s' '{text}' | sudo -n tee {path} >/dev/null")


@kola(
    name="ostree.status",
    description="one booted deployment of the image's commit; /usr ro, /etc and /var rw",
    tags=("ostree",),
)
def test_status(machine: Machine, request: pytest.FixtureRequest) -> None:
    updater = updater_for(machine)
    status = updater.status()
    assert len([d for d in status.deployments if d.booted]) == 1, _status_text(status)
    booted = status.booted
    # The image's commit: from the reference image's manifest, else the commit its
    # origin ref points to in the image's own repo (a fresh machine has moved nothing).
    expected = _image_commit(request)
    if expected is None:
        assert booted.origin, f"the booted deployment has no origin:\n{_status_text(status)}"
        ref = booted.origin.rpartition(":")[2]
        expected = machine.succeed(f"ostree --repo=/ostree/repo rev-parse {ref}").strip()
    assert booted.checksum == expected, f"booted {booted.checksum}, the image has {expected}"
    # That deployment is the running root.
    deploy = f"/sysroot/ostree/deploy/{booted.osname}/deploy/{booted.checksum}.{booted.serial}"
    machine.succeed(f"sudo -n test / -ef {deploy}")
    assert status.staged is None, f"an update is staged on a fresh machine:\n{_status_text(status)}"
    usr = machine.succeed("findmnt -n -o OPTIONS --target /usr").splitlines()[0].split(",")
    assert "ro" in usr, f"/usr mount options: {usr}"
    machine.fail("sudo -n touch /usr/.kolapy-write-test")
    for d in ("/etc", "/var"):
        probe = f"{d}/.kolapy-write-test"
        machine.succeed(f"sudo -n touch {probe} && sudo -n rm {probe}")


def _image_commit(request: pytest.FixtureRequest) -> str | None:
    """The ostree commit the image under test was built from, if kolapy knows it."""
    from kolapy.upgrade.refrepo import image_commit

    return image_commit(request.config)


@kola(
    name="ostree.upgrade-rollback",
    description="commit in the guest, deploy, reboot, roll back, reboot; /etc merge, shared /var",
    tags=("ostree", "reboot"),
)
def test_upgrade_rollback(machine: Machine) -> None:
    updater = updater_for(machine)
    parent = updater.status().booted
    assert parent.version, "the booted commit has no version metadata"

    # State before the update: /etc and /var changes the new deployment must see.
    _write(machine, "/etc/kolapy-etc-before", "before")
    _write(machine, "/var/kolapy-var", "before")
    version = f"{parent.version}.kolapy-1"
    target = make_commit(
        machine, parent.checksum, "kolapy/test-upgrade", version, {NEW_FILE: f"{version}\n"}
    )
    assert target != parent.checksum
    updater.rebase("kolapy/test-upgrade")
    staged = updater.status().staged
    assert staged is not None and staged.checksum == target, "the new commit is not staged"

    machine.reboot()
    _booted_is(updater, target, version)
    assert _read(machine, NEW_FILE) == f"{version}\n", f"{NEW_FILE} missing after the update"
    assert _read(machine, "/etc/kolapy-etc-before") == "before", "/etc change lost (3-way merge)"
    assert _read(machine, "/var/kolapy-var") == "before", "/var is not shared"
    machine.fail(f"sudo -n touch {NEW_FILE}")  # the new /usr is read-only too

    # Changes on the new deployment, then back.
    _write(machine, "/etc/kolapy-etc-after", "after")
    _write(machine, "/var/kolapy-var", "after")
    rollback = updater.status().rollback
    assert rollback is not None and rollback.checksum == parent.checksum
    updater.rollback()
    machine.reboot()
    _booted_is(updater, parent.checksum, parent.version)
    assert _read(machine, NEW_FILE) is None, f"{NEW_FILE} survived the rollback"
    assert _read(machine, "/var/kolapy-var") == "after", "/var is not shared across deployments"
    assert _read(machine, "/etc/kolapy-etc-before") == "before", "/etc change lost on rollback"
    after = _read(machine, "/etc/kolapy-etc-after")
    if updater.rollback_merges_etc:
        assert after == "after", "/etc change not merged into the rollback deployment"
    else:
        assert after is None, "the rollback deployment has /etc changes made after the update"


@kola(
    name="ostree.remote",
    description="add a remote served by kolapy over HTTP, pull a commit from it, upgrade to it",
    tags=("ostree", "reboot"),
)
def test_remote(machine: Machine, host_http: Any, request: pytest.FixtureRequest) -> None:
    from kolapy.upgrade.refrepo import image_manifest, next_version, run_image, successor_repo

    image = run_image(request.config)
    if image is None or image_manifest(image) is None:
        pytest.skip("needs the kolapy reference image (its commit is exported as the remote)")
    updater = updater_for(machine)
    parent = updater.status().booted
    assert parent.version, "the booted commit has no version metadata"
    repo = successor_repo(image)
    target, version = repo.target_commit, repo.target_version
    assert version == next_version(parent.version)
    srv = host_http(repo.path, machine)
    updater.add_remote("kolapy-remote", srv.url)
    refs = machine.succeed("sudo -n ostree --repo=/ostree/repo remote refs kolapy-remote")
    assert f"kolapy-remote:{repo.ref}" in refs.split(), refs
    updater.rebase(f"kolapy-remote:{repo.ref}")
    machine.reboot()
    status = _booted_is(updater, target, version)
    assert status.booted.origin == f"kolapy-remote:{repo.ref}", status.booted.origin
    assert _read(machine, repo.marker_path) == f"{version}\n"
    log = srv.log_path.read_text()
    # The guest resolved the ref (summary or refs/heads) and fetched objects from the host.
    assert "/objects/" in log, f"no object fetched over HTTP:\n{log}"
    assert "/summary" in log or f"/refs/heads/{repo.ref}" in log, f"ref not fetched:\n{log}"


@kola(
    name="ostree.hotfix",
    description="unlock --hotfix: a /usr change persists a reboot, a rollback drops it",
    tags=("ostree", "reboot"),
)
def test_hotfix(machine: Machine) -> None:
    updater = updater_for(machine)
    parent = updater.status().booted
    updater.unlock(hotfix=True)
    status = updater.status()
    assert status.booted.unlocked == "hotfix", _status_text(status)
    _write(machine, "/usr/share/kolapy-hotfix", "hotfix")
    machine.reboot()
    status = _booted_is(updater, parent.checksum, None)
    assert status.booted.unlocked == "hotfix", _status_text(status)
    assert _read(machine, "/usr/share/kolapy-hotfix") == "hotfix", "the hotfix did not persist"
    rollback = status.rollback
    assert rollback is not None and rollback.checksum == parent.checksum, _status_text(status)
    assert rollback.unlocked == "none", _status_text(status)
    updater.rollback()
    machine.reboot()
    status = _booted_is(updater, parent.checksum, None)
    assert status.booted.unlocked == "none", _status_text(status)
    assert _read(machine, "/usr/share/kolapy-hotfix") is None, "the hotfix survived the rollback"
    machine.fail("sudo -n touch /usr/.kolapy-write-test")


@kola(
    name="ostree.unlock",
    description="ostree admin unlock: /usr writable until the next boot",
    tags=("ostree", "reboot"),
)
def test_unlock(machine: Machine) -> None:
    updater = updater_for(machine)
    booted = updater.status().booted
    machine.fail("sudo -n touch /usr/.kolapy-write-test")
    updater.unlock()
    assert updater.status().booted.unlocked == "development"
    _write(machine, "/usr/share/kolapy-unlocked", "dev")
    assert _read(machine, "/usr/share/kolapy-unlocked") == "dev"
    machine.reboot()
    status = _booted_is(updater, booted.checksum, booted.version)
    assert status.booted.unlocked == "none", _status_text(status)
    assert _read(machine, "/usr/share/kolapy-unlocked") is None, "the unlocked change survived"
    machine.fail("sudo -n touch /usr/.kolapy-write-test")

