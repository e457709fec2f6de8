"""--platform libvirt: `kolapy run basic` passes on the x86_64 reference image as libvirt
domains, and passing, failing, Ctrl-C'd and SIGTERM'd runs leave no ``kolapy-*`` domain,
volume or network behind.

CI cost: one boot of the reference image (the basic run, ~ test_run_basic's cost) and
three runs on a blank disk that never boots (the domain runs for a few seconds, then
the run fails or is interrupted: ~15 s each, no boot), ~2.5 min in all under CI load.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

URI = "qemu:///system"
KOLAPY = [sys.executable, "-m", "kolapy.cli"]

NEVER_READY = """
from kolapy import kola

@kola(name="libvirt.never-ready", timeout=5)  # x the TCG scale
def test_never_ready(machine):
    machine.succeed("true")
"""


def _conn():
    libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed")
    libvirt.registerErrorHandler(lambda *_: None, None)
    try:
        return libvirt.open(URI)
    except libvirt.libvirtError as exc:
        pytest.skip(f"libvirtd at {URI} is not reachable: {exc}")


def kolapy_objects(prefix: str = "kolapy-") -> list[str]:
    """Every domain, network and storage volume whose name starts with ``prefix``."""
    conn = _conn()
    names = [d.name() for d in conn.listAllDomains()]
    names += [n.name() for n in conn.listAllNetworks()]
    for pool in conn.listAllStoragePools():
        if pool.isActive():
            names += [v.name() for v in pool.listAllVolumes()]
    return sorted(n for n in names if n.startswith(prefix))


def _run_prefix(out: Path) -> str:
    """``kolapy-<run>-`` of the run whose artifacts are in ``out`` (from its domain.xml)."""
    xml = next(out.rglob("domain.xml")).read_text()
    name = re.search(r"<name>(kolapy-[0-9a-f]+-)", xml)
    assert name, xml[:500]
    return name.group(1)


def test_basic_passes_on_libvirt_and_leaves_nothing(tmp_path: Path) -> None:
    _conn()
    out = tmp_path / "out"
    r = subprocess.run([*KOLAPY, "run", "basic", "--platform", "libvirt", f"--output-dir={out}",
                        "--live=plain"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=1800)
    text = r.stdout + r.stderr
    assert r.returncode == 0, text[-4000:]
    assert re.search(r"\b7 passed\b", text), text[-2000:]
    artifacts = next(out.rglob("domain.xml")).parent
    xml = (artifacts / "domain.xml").read_text()
    assert "<sysinfo type=\"fwcfg\">" in xml and "type=\"pty\"" in xml
    assert "Linux version" in (artifacts / "console.txt").read_text()  # via virtlogd
    assert (artifacts / "journal.txt").stat().st_size > 0
    assert kolapy_objects(_run_prefix(out)) == []


def test_failing_run_leaves_nothing(tmp_path: Path, blank_disk: Path) -> None:
    _conn()
    (tmp_path / "test_never.py").write_text(NEVER_READY)
    out = tmp_path / "out"
    before = set(kolapy_objects())
    proc = subprocess.Popen(
        [*KOLAPY, "run", "libvirt.never-ready", f"--tests={tmp_path / 'test_never.py'}",
         f"--nestos-image={blank_disk}", "--platform", "libvirt", f"--output-dir={out}",
         "--live=plain"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = _wait_for_domain(proc, before)
    text = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1, text[-4000:]  # the test failed (timed out booting)
    assert seen.startswith(_run_prefix(out))
    assert kolapy_objects(_run_prefix(out)) == [], text[-2000:]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_run_leaves_nothing(tmp_path: Path, blank_disk: Path, sig: int) -> None:
    _conn()
    (tmp_path / "test_never.py").write_text(NEVER_READY.replace("timeout=5", "timeout=600"))
    out = tmp_path / "out"
    before = set(kolapy_objects())
    proc = subprocess.Popen(
        [*KOLAPY, "run", "libvirt.never-ready", f"--tests={tmp_path / 'test_never.py'}",
         f"--nestos-image={blank_disk}", "--platform", "libvirt", f"--output-dir={out}",
         "--live=plain"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        name = _wait_for_domain(proc, before)
        time.sleep(2)
        assert name in kolapy_objects()  # the domain is there when the signal comes
        proc.send_signal(sig)
        text = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, text[-4000:]
    assert kolapy_objects(name.rsplit("-gw", 1)[0]) == [], text[-2000:]


@pytest.fixture
def blank_disk(tmp_path: Path) -> Path:
    """A qcow2 with no OS: its machine sits in the firmware until the run ends."""
    disk = tmp_path / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "256M"], check=True)
    return disk


def _wait_for_domain(proc: subprocess.Popen[str], before: set[str],
                     timeout: float = 180) -> str:
    """The name of the run's domain (not in ``before``), once it exists."""
    deadline = time.monotonic() + timeout
    while True:
        new = [n for n in kolapy_objects() if n not in before]
        if new:
            return new[0]
        assert proc.poll() is None, (proc.communicate()[0] or "")[-3000:]
        assert time.monotonic() < deadline, "no kolapy-* domain appeared"
        time.sleep(0.2)
