"""--platform libvirt: `kolapy run basic` passes on the x86_64 reference image as libvirt
domains, and passing, failing, Ctrl-C'd and SIGTERM'd runs leave no ``kolapy-*`` domain,
volume or network behind; what a ``kill -9``'d run leaves, the next run destroys.

The basic run uses the defaults (files, user-mode NIC); the failing and interrupted
runs use pool storage (their volumes must go too), the failing one with two hosts
(qemu:///system and qemu:///session: as root both reach the same daemon) and two
workers, whose machines must land one on each; the cluster uses pool storage, the
run's NAT network (SSH to the DHCP leases) and the same two hosts, and must stay on one.

CI cost (measured one at a time, host load 4-6): the basic run 114 s (one boot), four
runs on a blank disk that never boots (the domains run for a few seconds, then the run
fails, is interrupted or killed: 36 s, 8.5 s, 6.0 s, 5.6 s), the two-machine cluster
195 s (two boots at once, in the heavy-vm group): ~6 min in all, more under CI load.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

URI = "qemu:///system"
SECOND = "qemu:///session"
TWO_HOSTS = ["--libvirt-uri", URI, "--libvirt-uri", SECOND]
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


def kolapy_domains(prefix: str) -> list[str]:
    """The running domains whose name starts with ``prefix``."""
    return sorted(n for n in (d.name() for d in _conn().listAllDomains()) if n.startswith(prefix))


def _named_run() -> tuple[dict[str, str], str]:
    """An environment naming the inner run, and the prefix of its libvirt objects."""
    run = "t" + secrets.token_hex(4)
    return {**os.environ, "KOLAPY_LIBVIRT_RUN": run}, f"kolapy-{run}-"


def test_basic_passes_on_libvirt_and_leaves_nothing(tmp_path: Path) -> None:
    _conn()
    out = tmp_path / "out"
    env, prefix = _named_run()
    r = subprocess.run([*KOLAPY, "run", "basic", "--platform", "libvirt", f"--output-dir={out}",
                        "--live=plain"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=1800, env=env)
    text = r.stdout + r.stderr
    assert r.returncode == 0, text[-4000:]
    assert re.search(r"\b7 passed\b", text), text[-2000:]
    artifacts = next(out.rglob("domain.xml")).parent
    xml = (artifacts / "domain.xml").read_text()
    assert "<sysinfo type=\"fwcfg\">" in xml and "type=\"pty\"" in xml
    assert "Linux version" in (artifacts / "console.txt").read_text()  # via virtlogd
    assert (artifacts / "journal.txt").stat().st_size > 0
    assert f"<name>{prefix}gw-1</name>" in xml
    assert kolapy_objects(prefix) == []


@pytest.mark.parametrize("verb", ["run", "spawn"])
def test_missing_network_exits_2_before_any_boot(tmp_path: Path, verb: str) -> None:
    conn = _conn()
    name = "kolapy-nosuch-" + secrets.token_hex(3)
    assert name not in [n.name() for n in conn.listAllNetworks()]
    r = subprocess.run([*KOLAPY, verb, "--platform", "libvirt", "--libvirt-network", name,
                        "--nestos-image", str(tmp_path / "none.qcow2")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    # checked on the daemon before the image (which does not exist either)
    assert lines == [f"kolapy: error: --libvirt-network {name!r}: no such network on {URI} "
                     f"(see: virsh -c {URI} net-list --all)"], r.stderr


NEVER_READY_TOO = NEVER_READY + """

@kola(name="libvirt.never-ready-too", timeout=5)
def test_never_ready_too(machine):
    machine.succeed("true")
"""


def test_failing_run_on_two_hosts_places_on_both_and_leaves_nothing(
        tmp_path: Path, blank_disk: Path) -> None:
    """Two failing tests, two workers, two hosts: one machine on each (the second sees
    the first's untouched memory on its host), and no domain or volume is left."""
    proc, prefix = _start_never_ready(
        tmp_path, blank_disk, NEVER_READY_TOO, "libvirt.never-ready*",
        ["-j", "2", *TWO_HOSTS, "--libvirt-storage", "pool"])
    placed: dict[str, str] = {}
    deadline = time.monotonic() + 240
    while len(placed) < 2 and proc.poll() is None and time.monotonic() < deadline:
        for name in kolapy_domains(prefix):
            if name not in placed:
                with contextlib.suppress(Exception):  # gone meanwhile
                    placed[name] = _placement(name)
        time.sleep(0.2)
    text = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1, text[-4000:]  # both tests failed (timed out booting)
    assert "Timeout" in text, text[-3000:]
    assert sorted(placed.values()) == sorted([URI, SECOND]), (placed, text[-3000:])
    assert kolapy_objects(prefix) == [], text[-2000:]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_run_leaves_nothing(tmp_path: Path, blank_disk: Path, sig: int) -> None:
    proc, prefix = _start_never_ready(tmp_path, blank_disk,
                                      NEVER_READY.replace("timeout=5", "timeout=600"),
                                      extra=["--libvirt-storage", "pool"])
    try:
        name = _wait_for_domain(proc, prefix)
        time.sleep(2)
        present = kolapy_objects(prefix)  # the domain and its volumes when the signal comes
        assert name in present and f"{name}-disk0.qcow2" in present, present
        proc.send_signal(sig)
        text = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, text[-4000:]
    assert kolapy_objects(prefix) == [], text[-2000:]


def test_killed_run_leftovers_are_destroyed_by_the_next_run(
        tmp_path: Path, blank_disk: Path) -> None:
    """kill -9 skips all cleanup: the run's volumes and NAT network stay (its domain goes
    with its connection); the next run destroys them from the killed run's journal."""
    # not shared with other runs; the killed run's work dir (it cannot remove it) stays
    # under tmp_path
    (tmp_path / "tmp").mkdir()
    state = {"KOLAPY_STATE_DIR": str(tmp_path / "state"), "TMPDIR": str(tmp_path / "tmp")}
    proc, prefix = _start_never_ready(
        tmp_path, blank_disk, NEVER_READY.replace("timeout=5", "timeout=600"),
        extra=["--libvirt-storage", "pool", "--libvirt-network", "nat"], env_extra=state)
    try:
        name = _wait_for_domain(proc, prefix)
        time.sleep(2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    left = kolapy_objects(prefix)
    assert f"{name}-disk0.qcow2" in left and any(n.endswith("-nat") for n in left), left
    r = subprocess.run([*KOLAPY, "run", "--platform", "libvirt",
                        "--nestos-image", str(tmp_path / "none.qcow2")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, **state})
    assert r.returncode == 2 and "none.qcow2" in r.stderr, r.stderr  # swept, then bad input
    assert kolapy_objects(prefix) == [], r.stderr
    assert f"{name}-disk0.qcow2" in r.stderr and "a killed run left" in r.stderr, r.stderr
    assert list((tmp_path / "state" / "libvirt-journals").glob("*.objs")) == []


PAIR = """
from kolapy import kola

pytestmark = kola(name="libvirt.pair", cluster_size=2)


def test_peers_reach_each_other(cluster):
    a, b = cluster.machines
    assert f"{cluster.address(a)}/24" in a.succeed(["ip", "-4", "-o", "addr", "show"])
    a.succeed(["ping", "-c", "2", "-W", "5", cluster.address(b)])
    b.succeed(["ping", "-c", "2", "-W", "5", cluster.address(a)])
"""


@pytest.mark.xdist_group("heavy-vm")  # two guests at once: not beside the other heavy ones
def test_cluster_on_a_private_libvirt_network(tmp_path: Path) -> None:
    """Two domains on one transient isolated libvirt network ping each other; the
    network goes with them.  ``--rerun``: as in test_cluster, a loaded host may fail a
    member's first boot (infrastructure); the rerun must pass."""
    _conn()
    (tmp_path / "test_pair.py").write_text(PAIR)
    out = tmp_path / "out"
    env, prefix = _named_run()
    r = subprocess.run(
        [*KOLAPY, "run", "libvirt.pair", f"--tests={tmp_path / 'test_pair.py'}", "--rerun",
         "--platform", "libvirt", *TWO_HOSTS, "--libvirt-storage", "pool",
         "--libvirt-network", "nat", f"--output-dir={out}", "--live=plain"],
        cwd=tmp_path, capture_output=True, text=True, timeout=2400, env=env)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    dirs = sorted({p.parent for p in out.rglob("domain.xml")})[-2:]  # the passing attempt
    xmls = [(d / "domain.xml").read_text() for d in dirs]
    assert len(xmls) == 2, dirs
    networks = [re.findall(r'<source network="([^"]+)"', x) for x in xmls]
    for nets in networks:  # each member: the run's NAT network, then the private one
        assert len(nets) == 2, networks
        assert re.fullmatch(re.escape(prefix) + r"gw\d*-nat", nets[0]), nets
        assert re.fullmatch(re.escape(prefix) + r"gw-net\d+", nets[1]), nets
    assert networks[0] == networks[1]
    # one host for the cluster, whichever it was
    hosts = {re.search(r'placement [^>]*uri="([^"]+)"', x).group(1) for x in xmls}
    assert len(hosts) == 1 and hosts <= {URI, SECOND}, hosts
    # pool storage: the disk is a volume; SSH went to the DHCP lease on the NAT network
    for d, xml in zip(dirs, xmls, strict=True):
        assert "/var/lib/libvirt/images/kolapy/" + prefix in xml
        assert re.search(r"HostName 10\.231\.\d+\.\d+\n    Port 22\n",
                         (d / "ssh-config").read_text())
        assert "Linux version" in (d / "console.txt").read_text()  # through a stream
    assert kolapy_objects(prefix) == []


@pytest.fixture
def blank_disk(tmp_path: Path) -> Path:
    """A qcow2 with no OS: its machine sits in the firmware until the run ends."""
    disk = tmp_path / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "256M"], check=True)
    return disk


def _start_never_ready(tmp_path: Path, blank_disk: Path, source: str,
                       pattern: str = "libvirt.never-ready",
                       extra: list[str] | None = None,
                       env_extra: dict[str, str] | None = None,
                       ) -> tuple[subprocess.Popen[str], str]:
    """Start `kolapy run <pattern>` of ``source`` on ``blank_disk``; the process and the
    prefix of its libvirt objects.  ``env_extra``: the run in a session of its own
    (``os.killpg(proc.pid, ...)`` reaches all of it), these variables set."""
    _conn()
    (tmp_path / "test_never.py").write_text(source)
    env, prefix = _named_run()
    env.update(env_extra or {})
    proc = subprocess.Popen(
        [*KOLAPY, "run", pattern, f"--tests={tmp_path / 'test_never.py'}",
         f"--nestos-image={blank_disk}", "--platform", "libvirt", *(extra or []),
         f"--output-dir={tmp_path / 'out'}", "--live=plain"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=env_extra is not None)
    return proc, prefix


def _placement(domain: str) -> str:
    """The URI a running kolapy domain was placed through (its ``<metadata>``)."""
    from kolapy.machine.libvirt_hosts import placed_through

    return placed_through(_conn().lookupByName(domain).XMLDesc(0))


def _wait_for_domain(proc: subprocess.Popen[str], prefix: str, timeout: float = 180) -> str:
    """The name of the run's first domain (``prefix...``), once it exists."""
    deadline = time.monotonic() + timeout
    while True:
        new = kolapy_domains(prefix)
        if new:
            return new[0]
        assert proc.poll() is None, (proc.communicate()[0] or "")[-3000:]
        assert time.monotonic() < deadline, "no kolapy-* domain appeared"
        time.sleep(0.2)
