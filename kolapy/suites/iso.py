"""kola's testiso scenarios: ``iso.live-login``, ``iso.as-disk``, ``iso.install``,
``iso.offline-install``, on the ``--nestos-iso`` live ISO (default: the reference
live ISO, built on first use).

Selected by name (``kolapy run 'iso.*'``) or ``--tag iso``, never by a plain run
(``required_tag``).  Each scenario boots one fresh machine (a blank 12 GiB disk0,
the ISO as a virtio-scsi CD-ROM or as a disk) and follows its progress on the
``testisocompletion`` port, as nestos-assembler's testiso does; the install
scenarios' installer reboot ends QEMU (``-no-reboot``) and the installed disk boots
in a new QEMU without the ISO (:func:`kolapy.iso.scenarios.run_install`).  The firmware is
the run's (``--firmware uefi`` for the UEFI variants).  Timings go to
``<output-dir>/<test>/timings.json``.  Each scenario fails if the ISO's sha256
changed (machines boot private copies).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kolapy import kola
from kolapy.iso import scenarios
from kolapy.machine.qemu import QemuMachine

ISO_TIMEOUT = 1800
SCENARIOS = ("iso.live-login", "iso.as-disk", "iso.install", "iso.offline-install")
"""The tests of this module: their machines boot live ISOs only (``kolapy run`` needs
no qcow2 for them)."""


def _output_dir(request: pytest.FixtureRequest, name: str) -> Path:
    try:
        from kolapy.plugin import SESSION

        base = request.config.stash[SESSION].output_dir
    except (KeyError, ImportError):
        base = Path(tempfile.gettempdir())
    from kolapy.report.outdir import safe_component

    return Path(base) / safe_component(name)


@pytest.fixture
def iso_machine(request: pytest.FixtureRequest) -> Iterator[Callable[..., QemuMachine]]:
    """``iso_machine(**spec_changes)``: a not yet started machine booting the live ISO.

    ``iso_machine.ssh_key`` is the harness key (for target configs); every machine
    is stopped and its artifacts written after the test.
    """
    from kolapy.config import RunConfig
    from kolapy.iso.build import ensure_iso
    from kolapy.machine.spec import MachineSpec
    from kolapy.scheduling import effective_firmware
    from kolapy.transport.ssh import SSHKeyPair

    cfg = RunConfig.from_options(lambda dest, default: request.config.getoption(dest, default))
    iso = cfg.iso or ensure_iso(cfg.arch)
    workdir = Path(tempfile.mkdtemp(prefix="kolapy-iso-"))
    key = SSHKeyPair.generate(workdir / "ssh")
    base = MachineSpec(image=iso, arch=cfg.arch, firmware=effective_firmware(cfg),
                       memory_mib=cfg.memory_mib, distro=cfg.distro, boot_media="iso")
    machines: list[QemuMachine] = []

    def make(**changes: Any) -> QemuMachine:
        name = f"iso-{len(machines) + 1}"
        spec = replace(base, name=name, **changes)
        m = QemuMachine(spec, workdir=workdir / name, ssh_key=key, accel=cfg.accel)
        machines.append(m)
        return m

    make.ssh_key = key  # type: ignore[attr-defined]
    make.cfg = cfg  # type: ignore[attr-defined]
    before = file_sha256(iso)
    try:
        yield make
    finally:
        meta = request.node.get_closest_marker("kola")
        out = _output_dir(request, getattr(meta, "kwargs", {}).get("name", request.node.name))
        for m in machines:
            m.stop()
            with contextlib.suppress(OSError):
                m.write_artifacts(out / m.name)
        shutil.rmtree(workdir, ignore_errors=True)
    # Machines boot private copies; the user's ISO must never be written (~1 s per 500 MiB).
    if file_sha256(iso) != before:
        pytest.fail(f"the ISO {iso} changed during the test (sha256 {before} before)")


def file_sha256(path: Path) -> str:
    """The sha256 of ``path``, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _record(request: pytest.FixtureRequest, name: str, timings: dict[str, float]) -> None:
    scenarios.write_timings(_output_dir(request, name) / "timings.json", timings)
    request.node.user_properties.append(("timings", timings))


@kola(name="iso.live-login", description="live ISO without a config: autologin console "
      "signals nestos-liveiso-success", tags=("iso",), required_tag="iso",
      timeout=ISO_TIMEOUT)
def test_live_login(request: pytest.FixtureRequest, iso_machine: Any) -> None:
    m = iso_machine(embed_config=False)
    _record(request, "iso.live-login", scenarios.run_live_login(m))


@kola(name="iso.as-disk", description="the live ISO attached as a disk (El Torito broken) "
      "boots its embedded config and signals live-test-OK", tags=("iso",),
      required_tag="iso", timeout=ISO_TIMEOUT)
def test_as_disk(request: pytest.FixtureRequest, iso_machine: Any) -> None:
    m = iso_machine(boot_media="iso-as-disk", ignition=scenarios.live_signal_config())
    _record(request, "iso.as-disk", scenarios.run_live_signal(m))


def _install(request: pytest.FixtureRequest, iso_machine: Any, name: str,
             offline: bool) -> None:
    from kolapy.machine.platform import load_platform
    from kolapy.transport.ssh import SSHKeyPair

    cfg = iso_machine.cfg
    host_dir = Path(tempfile.mkdtemp(prefix="kolapy-isohost-"))
    try:
        host = SSHKeyPair.generate(host_dir, "ssh_host_ed25519_key", comment="kolapy-iso-host")
        console = f"{load_platform(cfg.arch).console},115200n8"
        live, _ = scenarios.install_configs(distro=cfg.distro, ssh_key=iso_machine.ssh_key,
                                            host_key=host, console=console, offline=offline)
        m = iso_machine(ignition=live, disk_size_gib=12.0, no_reboot=True)
        m.host_key = host
        _record(request, name, scenarios.run_install(m))
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)


@kola(name="iso.install", description="the live ISO's installer writes the disk from "
      "/etc/nestos/installer.d; the installed system boots from the disk alone, runs its "
      "first-boot Ignition and answers SSH", tags=("iso",), required_tag="iso",
      timeout=ISO_TIMEOUT)
def test_install(request: pytest.FixtureRequest, iso_machine: Any) -> None:
    _install(request, iso_machine, "iso.install", offline=False)


@kola(name="iso.offline-install", description="iso.install with offline: true (the image "
      "on the ISO, no download)", tags=("iso",), required_tag="iso", timeout=ISO_TIMEOUT)
def test_offline_install(request: pytest.FixtureRequest, iso_machine: Any) -> None:
    _install(request, iso_machine, "iso.offline-install", offline=True)
