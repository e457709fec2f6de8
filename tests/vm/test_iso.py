"""The reference live ISO on real QEMU: kola's iso.live-login and iso.install.

Cost (TCG, 2 cores; measured numbers in docs/iso.md): the ISO is built once and
cached (.ci/run builds it before the tests, like the qcow2).  Two machines, one at a
time per test: iso.live-login boots the ISO to its autologin console; iso.install
boots the live system with an embedded config, installs to a blank disk, reboots
and waits for the installed system's SSH.  Both check that the user's ISO (here
the cached reference ISO) is unchanged.  iso.install embeds its live config with
``kolapy iso ignition embed`` (and round-trips show/remove on the real ISO) instead
of the machine's own embedding: no extra boot, ~10 s of ISO copies and checksums.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kolapy.iso import scenarios
from kolapy.machine.qemu import QemuMachine
from kolapy.machine.spec import MachineSpec
from kolapy.transport.ssh import SSHKeyPair
from tests.vm.conftest import sha256

pytestmark = pytest.mark.vm


@pytest.fixture(scope="session")
def ref_iso() -> Path:
    """The x86_64 reference live ISO (built on first use; file-locked)."""
    from kolapy.iso.build import ensure_iso

    return ensure_iso()


@pytest.fixture
def iso_checksum(ref_iso: Path):
    before = sha256(ref_iso)
    yield before
    assert sha256(ref_iso) == before, "the ISO was written"


def _machine(iso: Path, workdir: Path, **changes: object) -> QemuMachine:
    key = SSHKeyPair.generate(workdir / "ssh")
    spec = MachineSpec(image=iso, boot_media="iso", name=workdir.name, **changes)  # type: ignore[arg-type]
    return QemuMachine(spec, workdir=workdir / "m", ssh_key=key)


def test_iso_live_login(ref_iso: Path, iso_checksum: str, tmp_path: Path) -> None:
    m = _machine(ref_iso, tmp_path, embed_config=False)
    try:
        timings = scenarios.run_live_login(m)
    finally:
        m.stop()
        m.write_artifacts(tmp_path / "artifacts")
    print(f"iso.live-login: {timings}")
    console = (tmp_path / "artifacts/console.txt").read_text(errors="replace")
    assert "kolapy-live-root" in console or "login" in console


def _kolapy(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    """The installed ``kolapy`` command line (not the in-process API)."""
    exe = Path(sys.executable).with_name("kolapy")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, timeout=300)


def _cli_embed(ref_iso: Path, before: str, config: bytes, tmp_path: Path) -> Path:
    """``kolapy iso ignition embed|show|remove`` on a copy of the real reference ISO:
    show gives the config back byte for byte, remove gives back the ISO byte for byte,
    the source is never written.  Returns the ISO with the config embedded."""
    cfg = tmp_path / "live.ign"
    cfg.write_bytes(config)
    embedded, removed = tmp_path / "embedded.iso", tmp_path / "removed.iso"
    shown = _kolapy("iso", "ignition", "show", ref_iso)
    assert shown.returncode == 1 and b"No embedded Ignition config." in shown.stderr, shown
    done = _kolapy("iso", "ignition", "embed", "-i", cfg, "-o", embedded, ref_iso)
    assert done.returncode == 0, done.stderr.decode()
    shown = _kolapy("iso", "ignition", "show", embedded)
    assert shown.returncode == 0 and shown.stdout == config, shown.stderr.decode()
    again = _kolapy("iso", "ignition", "embed", "-i", cfg, embedded)  # no --force
    assert again.returncode == 2 and b"use --force" in again.stderr, again
    done = _kolapy("iso", "ignition", "remove", "-o", removed, embedded)
    assert done.returncode == 0, done.stderr.decode()
    assert sha256(removed) == before, "remove did not give back the ISO byte for byte"
    removed.unlink()
    assert sha256(ref_iso) == before
    return embedded


def test_iso_install(ref_iso: Path, iso_checksum: str, tmp_path: Path) -> None:
    key = SSHKeyPair.generate(tmp_path / "ssh")
    host = SSHKeyPair.generate(tmp_path / "host", "ssh_host_ed25519_key")
    live, _ = scenarios.install_configs(distro="nestos", ssh_key=key, host_key=host,
                                        console="ttyS0,115200n8", offline=True)
    # The live config is embedded by the CLI, not by the machine: live-test-OK is the
    # content of a file that config wrote (sent by a unit of the same config), so it
    # proves the real live initramfs applied a config `kolapy iso ignition embed` wrote.
    iso = _cli_embed(ref_iso, iso_checksum, live.to_json().encode(), tmp_path)
    spec = MachineSpec(image=iso, boot_media="iso", embed_config=False, disk_size_gib=12.0,
                       no_reboot=True, name="install")
    m = QemuMachine(spec, workdir=tmp_path / "m", ssh_key=key)
    m.host_key = host
    try:
        timings = scenarios.run_install(m)
        # The installed system is an ordinary machine now: the Machine API works on it.
        assert m.succeed("systemctl is-system-running").strip() == "running"
    finally:
        m.stop()
        m.write_artifacts(tmp_path / "artifacts")
    print(f"iso.install: {timings}")
