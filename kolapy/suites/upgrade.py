"""kola ``run-upgrade``: boot the parent image, upgrade, verify, run ``basic``, roll back.

Selected by ``kolapy run-upgrade`` (or ``kolapy run upgrade.basic`` / ``--tag
upgrade``); never by a plain ``kolapy run`` (``required_tag``).  The target
comes from ``--upgrade-repo``/``--upgrade-ref`` (:mod:`kolapy.upgrade.target`).
The parent and target commits, versions and each reboot's time are written to
``<output-dir>/upgrade.basic/upgrade.json`` (``kolapy run-upgrade`` prints them).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from kolapy import Machine, kola
from kolapy.suites import basic
from kolapy.updates import Deployment, Status, commit_version, updater_for
from kolapy.upgrade.target import UpgradeTarget, resolve

REMOTE = "kolapy-upgrade"
RESULT_FILE = "upgrade.json"


def _describe(status: Status) -> str:
    return "\n".join(
        f"  {'*' if d.booted else ' '} {d.checksum}.{d.serial} "
        f"version={d.version} origin={d.origin}"
        for d in status.deployments
    )


def _target(request: pytest.FixtureRequest) -> UpgradeTarget:
    from kolapy.config import RunConfig
    from kolapy.upgrade.refrepo import run_image

    cfg = RunConfig.from_options(lambda dest, default: request.config.getoption(dest, default))
    image = run_image(request.config)
    if image is None:
        pytest.fail("no image to upgrade (the reference image is not built)")
    return resolve(cfg.upgrade_repo, cfg.upgrade_ref, image)


@kola(
    name="upgrade.basic",
    description="upgrade the image to --upgrade-ref, verify, run basic, roll back, verify",
    tags=("upgrade", "reboot"),
    required_tag="upgrade",
    min_disk=basic.DISK_GIB,
    timeout=2400,
)
def test_upgrade(request: pytest.FixtureRequest, host_http: Any) -> None:
    target = _target(request)
    if target.directory is not None and target.expected_commit is None:
        pytest.fail(f"upgrade ref {target.ref!r} does not exist in {target.where}")
    machine: Machine = request.getfixturevalue("machine")
    result: dict[str, Any] = {"ref": target.ref, "repo": target.where, "reboots_s": []}
    out = _result_path(request)

    def reboot() -> None:
        start = time.monotonic()
        machine.reboot()
        result["reboots_s"].append(round(time.monotonic() - start, 1))
        out.write_text(json.dumps(result, indent=2) + "\n")

    updater = updater_for(machine)
    parent = updater.status().booted
    result["parent"] = {"commit": parent.checksum, "version": parent.version}
    url = target.url or host_http(target.directory, machine).url
    updater.add_remote(REMOTE, url)
    refs = machine.run(f"sudo -n ostree --repo=/ostree/repo remote refs {REMOTE}")
    if refs.failed:
        pytest.fail(f"cannot list the refs of {target.where}: {refs.stderr.strip()}")
    if f"{REMOTE}:{target.ref}" not in refs.stdout.split():
        pytest.fail(
            f"upgrade ref {target.ref!r} does not exist in {target.where} "
            f"(it has: {', '.join(r.partition(':')[2] for r in refs.stdout.split()) or 'no refs'})"
        )

    updater.rebase(f"{REMOTE}:{target.ref}")
    pulled = machine.succeed(f"ostree --repo=/ostree/repo rev-parse {REMOTE}:{target.ref}").strip()
    version = commit_version(machine, pulled)
    result["target"] = {"commit": pulled, "version": version}
    out.write_text(json.dumps(result, indent=2) + "\n")
    if target.expected_commit is not None:
        assert pulled == target.expected_commit, (
            f"the guest pulled {pulled}, {target.where} has {target.ref} = {target.expected_commit}"
        )
    if target.expected_version is not None:
        assert version == target.expected_version
    assert pulled != parent.checksum, f"{target.ref} is the booted commit: nothing to upgrade to"
    status = updater.status()
    assert status.staged is not None and status.staged.checksum == pulled, _describe(status)

    reboot()
    _assert_booted(updater.status(), pulled, version)
    if target.marker is not None:
        path, text = target.marker
        assert machine.succeed(f"cat {path}") == text, f"{path} of the target commit"
    for name in sorted(dir(basic)):
        if name.startswith("test_"):
            getattr(basic, name)(machine)  # basic's checks on the upgraded machine

    updater.rollback()
    reboot()
    _assert_booted(updater.status(), parent.checksum, parent.version)
    if target.marker is not None:
        machine.fail(f"test -e {target.marker[0]}")
    result["result"] = "PASS"
    out.write_text(json.dumps(result, indent=2) + "\n")


def _assert_booted(status: Status, commit: str, version: str | None) -> Deployment:
    booted = status.booted
    assert booted.checksum == commit, f"booted {booted.checksum}, expected {commit}:\n" + _describe(
        status
    )
    assert booted.version == version, f"booted version {booted.version!r}, expected {version!r}"
    return booted


def _result_path(request: pytest.FixtureRequest) -> Path:
    from kolapy.plugin import SESSION

    ks = request.config.stash.get(SESSION, None)
    base = Path(ks.output_dir) if ks is not None else Path(request.config.rootpath)
    d = base / "upgrade.basic"
    d.mkdir(parents=True, exist_ok=True)
    return d / RESULT_FILE
