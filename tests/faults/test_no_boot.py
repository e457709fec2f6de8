"""Faults that need no guest OS: each ends classified, kept, cleaned up, the image untouched.

CI cost: no boot.  Where QEMU must run, it sits on a blank disk (no OS) until
the run is cut a few seconds after its ``booting`` event; the file takes about
a minute in all.  docs/reliability.md lists every fault and where it is tested.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import (
    BAD_INPUT,
    FAILED,
    INTERRUPTED,
    PASSED,
    REPORTS_UNWRITTEN,
    Sandbox,
    events,
    junit_case,
    leftover_pids,
    one_error_line,
    sha256,
    wait_event,
)

HANGS = """
from kolapy import kola

@kola(name="fault.hang")
def test_hang(machine):
    machine.succeed("true")
"""

NO_MACHINE = """
from kolapy import kola

@kola(name="fault.nomachine")
def test_nomachine():
    assert True
"""

# Fills the run's own output dir (a small tmpfs) while the run is on.
FILLS = """
import os
from kolapy import kola

@kola(name="fault.fill")
def test_fill():
    with open(os.path.join(os.environ["FAULT_OUT"], "filler"), "wb") as f:
        try:
            while True:
                f.write(b"x" * 65536)
                f.flush()
        except OSError:
            pass
"""


@pytest.fixture(scope="module")
def blank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A blank qcow2 (no OS: QEMU waits forever) made immutable, and its checksum.

    ``chattr +i`` holds even for root, so every run here also proves that a
    read-only base image is enough: it is only ever a backing file.
    """
    d = tmp_path_factory.mktemp("base")
    img = d / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "256M"], check=True)
    subprocess.run(["chattr", "+i", str(img)], check=True)
    try:
        yield img, sha256(img)
    finally:
        subprocess.run(["chattr", "-i", str(img)], check=False)


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


def _tests(box: Sandbox, name: str, text: str) -> str:
    path = box.root / f"test_{name}.py"
    path.write_text(text)
    return f"--tests={path}"


def _in_namespace(script: str) -> tuple[str, ...]:
    """Run the command after ``script`` in a private mount namespace (we are root)."""
    return ("unshare", "-m", "sh", "-ec", f"{script}\nexec \"$@\"", "sh")


# ---- 7, 8, 17: Ctrl-C and SIGTERM to kolapy run (QEMU up on a read-only base) -------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_signal_to_kolapy_run(box: Sandbox, blank: tuple[Path, str], sig: int) -> None:
    image, checksum = blank
    proc = box.start("fault.hang", _tests(box, "hang", HANGS), f"--nestos-image={image}")
    try:
        wait_event(proc, box.out, "booting")
        time.sleep(3)  # QEMU is up, waiting for a guest that never comes
        assert leftover_pids(box.root), "QEMU should be running by now"
        os.kill(proc.pid, sig)
        text = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == INTERRUPTED, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    html = (box.out / "reports" / "report.html").read_text()
    assert 'id="state">interrupted<' in html
    assert json.loads((box.out / "properties.json").read_text())["command_line"]
    box.assert_clean()
    assert sha256(image) == checksum


# ---- 10, 11: corrupt and wrong-architecture images ----------------------------------------

def _truncated(d: Path) -> Path:
    img = d / "truncated.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "1G"], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0xab 0 8M", str(img)], check=True,
                   capture_output=True)
    with img.open("r+b") as f:
        f.truncate(os.path.getsize(img) // 3)  # header fine, tables and data cut
    return img


def _bad_header(d: Path) -> Path:
    img = d / "badheader.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "1G"], check=True)
    with img.open("r+b") as f:
        f.seek(4)
        f.write((99).to_bytes(4, "big"))  # qcow2 version 99
    return img


def _wrong_arch(d: Path) -> Path:
    raw = d / "arm.raw"
    with raw.open("wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["sfdisk", "-q", str(raw)], check=True, text=True,
                   input="label: gpt\n,8M,B921B045-1DF0-41C3-AF44-4C6F280D3FAE\n")
    img = d / "arm.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(img)], check=True)
    return img


@pytest.mark.parametrize(
    ("make", "needle"),
    [(_truncated, "is corrupt: qemu-img check found"), (_bad_header, "not a usable disk image"),
     (_wrong_arch, "is a aarch64 image")],
    ids=["truncated-qcow2", "bad-qcow2-header", "wrong-arch"],
)
def test_bad_image_is_bad_input(box: Sandbox, make, needle: str) -> None:  # type: ignore[no-untyped-def]
    image = make(box.root)
    checksum = sha256(image)
    r = box.run("fault.hang", _tests(box, "hang", HANGS), f"--nestos-image={image}", timeout=120)
    assert r.returncode == BAD_INPUT, r.stderr[-3000:]
    one_error_line(r.stderr, str(image), needle)
    assert not (box.out / "events.jsonl").exists()  # nothing started
    box.assert_clean()
    assert sha256(image) == checksum


# ---- 12, 13: missing firmware, missing QEMU -------------------------------------------------

def test_missing_firmware_is_bad_input(box: Sandbox, blank: tuple[Path, str]) -> None:
    image, checksum = blank
    hide = " ; ".join(f"mount -t tmpfs none {d}" for d in ("/usr/share/OVMF", "/usr/share/qemu")
                      if Path(d).is_dir())
    r = box.run("fault.hang", _tests(box, "hang", HANGS), f"--nestos-image={image}",
                "--qemu-firmware=uefi", prefix=_in_namespace(hide), timeout=120)
    assert r.returncode == BAD_INPUT, r.stderr[-3000:]
    one_error_line(r.stderr, "UEFI firmware for x86_64 not found", "/usr/share/OVMF",
                   "install the apt package ovmf")
    box.assert_clean()
    assert sha256(image) == checksum


def test_missing_qemu_is_bad_input(box: Sandbox, blank: tuple[Path, str]) -> None:
    image, checksum = blank
    bindir = box.root / "bin"  # qemu-img and the usual tools, but no qemu-system-*
    bindir.mkdir()
    for tool in ("qemu-img", "qemu-io", "sfdisk", "ssh", "ssh-keygen", "socat"):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    r = box.run("fault.hang", _tests(box, "hang", HANGS), f"--nestos-image={image}",
                env=box.env(PATH=f"{bindir}:{Path(sys.executable).parent}"), timeout=120)
    assert r.returncode == BAD_INPUT, r.stderr[-3000:]
    one_error_line(r.stderr, "qemu-system-x86_64 is not on PATH", "qemu-system-x86")
    box.assert_clean()
    assert sha256(image) == checksum


# ---- 15, 16: output dir not writable, disk full ---------------------------------------------

def test_read_only_output_dir_is_bad_input(box: Sandbox, blank: tuple[Path, str]) -> None:
    image, _ = blank
    box.out.mkdir()
    r = box.run("fault.hang", _tests(box, "hang", HANGS), f"--nestos-image={image}",
                prefix=_in_namespace(f"mount -t tmpfs -o ro none {box.out}"), timeout=120)
    assert r.returncode == BAD_INPUT, r.stderr[-3000:]
    one_error_line(r.stderr, f"output directory {box.out}", "Read-only file system")
    box.assert_clean()


def test_full_output_dir_is_bad_input(box: Sandbox, blank: tuple[Path, str]) -> None:
    image, _ = blank
    box.out.mkdir()
    fill = f"mount -t tmpfs -o size=64k none {box.out}; dd if=/dev/zero of={box.out}/fill " \
           "bs=4k 2>/dev/null || true"
    r = box.run("fault.hang", _tests(box, "hang", HANGS), f"--nestos-image={image}",
                prefix=_in_namespace(fill), timeout=120)
    assert r.returncode == BAD_INPUT, r.stderr[-3000:]
    one_error_line(r.stderr, f"output directory {box.out}", "No space left on device")
    box.assert_clean()


def test_output_dir_filling_up_during_the_run(box: Sandbox, blank: tuple[Path, str]) -> None:
    image, _ = blank
    box.out.mkdir()
    r = box.run("fault.fill", _tests(box, "fill", FILLS), f"--nestos-image={image}",
                prefix=_in_namespace(f"mount -t tmpfs -o size=1m none {box.out}"),
                env=box.env(FAULT_OUT=str(box.out)), timeout=120)
    assert r.returncode == REPORTS_UNWRITTEN, (r.stdout + r.stderr)[-3000:]
    one_error_line(r.stderr, f"cannot write the reports to {box.out}", "No space left")
    box.assert_clean()


# ---- 18: two runs at once on the same image and cache ---------------------------------------

def test_two_runs_at_once(box: Sandbox, blank: tuple[Path, str]) -> None:
    image, checksum = blank
    tests = _tests(box, "hang", HANGS)
    outs = [box.root / "out-a", box.root / "out-b"]
    procs = [box.start("fault.hang", tests, f"--nestos-image={image}", out=o) for o in outs]
    try:
        for p, o in zip(procs, outs, strict=True):
            wait_event(p, o, "booting")
        time.sleep(3)
        for p in procs:
            os.kill(p.pid, signal.SIGINT)
        texts = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    for p, text, o in zip(procs, texts, outs, strict=True):
        assert p.returncode == INTERRUPTED, text[-3000:]
        assert (o / "reports" / "report.html").is_file()
    box.assert_clean()
    assert sha256(image) == checksum


# ---- 19: reference-image build killed halfway, then run again -------------------------------

BUILDER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from kolapy.refimage import build, cache

    def fake(rcp, work, say):
        out = work / "out"
        out.mkdir()
        (out / rcp.image_name).write_bytes(b"QFI\\xfb half")
        if sys.argv[1] == "hang":
            Path(sys.argv[2]).write_text(str(work))
            time.sleep(3600)  # killed here, halfway
        (out / cache.MANIFEST).write_text(json.dumps({"recipe_hash": "x"}))
        return out

    build._build_in = fake
    build.require_host_tools = lambda platforms: None
    print(build.ensure_image(progress=lambda m: None))
    """
)


def test_interrupted_image_build_then_again(box: Sandbox) -> None:
    env = box.env(KOLAPY_CACHE_DIR=str(box.root / "cache"))
    started = box.root / "started"
    first = subprocess.Popen([sys.executable, "-c", BUILDER, "hang", str(started)], env=env)
    deadline = time.monotonic() + 60
    while not started.exists():
        assert first.poll() is None and time.monotonic() < deadline, "the build never started"
        time.sleep(0.1)
    work = Path(started.read_text())
    first.kill()  # SIGKILL: no cleanup of its own, the lock file stays on disk
    first.wait()
    assert work.is_dir() and not list((box.root / "cache" / "images").glob("[0-9a-f]*[!k]"))
    again = subprocess.run([sys.executable, "-c", BUILDER, "finish", ""], env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == PASSED, again.stderr
    built = Path(again.stdout.strip())
    assert built.is_file() and built.parent.parent == box.root / "cache" / "images"
    assert not work.exists()  # the dead builder's half-built work dir is gone
    assert not [p for p in built.parent.parent.iterdir() if p.name.startswith(".build-")]
    box.assert_clean()


# ---- 24: a config that is not UTF-8 ---------------------------------------------------------

def test_config_not_utf8_is_bad_input(box: Sandbox, blank: tuple[Path, str]) -> None:
    image, _ = blank
    test_dir = box.root / "proj" / "tests" / "kola" / "bad"
    test_dir.mkdir(parents=True)
    (test_dir / "test.sh").write_text("#!/bin/bash\ntrue\n")
    (test_dir / "test.sh").chmod(0o755)
    config = test_dir / "config.ign"
    config.write_bytes(b'{"ignition": {"version": "3.3.0"}, "x": "\xff\xfe"}')
    r = box.run("-E", str(box.root / "proj"), "ext.proj.bad", f"--nestos-image={image}",
                timeout=120)
    assert r.returncode == BAD_INPUT, (r.stdout + r.stderr)[-3000:]
    one_error_line(r.stderr, str(config), "utf-8")
    box.assert_clean()


# A kola test whose Ignition config carries a 3 MiB inline file: past the fw_cfg limit.
HUGE_CONFIG = """
from kolapy import kola

BIG = {"ignition": {"version": "3.3.0"}, "storage": {"files": [
    {"path": "/etc/big", "contents": {"source": "data:," + "x" * (3 << 20)}}]}}

@kola(name="fault.huge-config", ignition=BIG)
def test_huge_config(machine):
    machine.succeed("true")
"""


def test_config_too_large_for_fw_cfg_is_bad_input(box: Sandbox, blank: tuple[Path, str]) -> None:
    image, _ = blank
    start = time.monotonic()
    r = box.run("fault.huge-config", _tests(box, "huge_config", HUGE_CONFIG),
                f"--nestos-image={image}", timeout=120)
    assert r.returncode == BAD_INPUT, (r.stdout + r.stderr)[-3000:]
    one_error_line(r.stderr, "fault.huge-config", "its Ignition config is 3.0 MiB",
                   "over the 2 MiB", "fw_cfg")
    assert not any(e["event"] == "booting" for e in events(box.out))
    assert time.monotonic() - start < 60
    box.assert_clean()


# ---- 2: the guest hangs at boot (no SSH, no console): a bounded wait, then an error ---------

def test_guest_hang_at_boot_is_a_bounded_infra_error(box: Sandbox, blank: tuple[Path, str]) -> None:
    image, checksum = blank
    start = time.monotonic()
    # Every timeout scaled by 0.1: the 120 s ready timeout becomes 12 s.
    r = box.run("fault.hang", _tests(box, "hang", HANGS), f"--nestos-image={image}",
                env=box.env(KOLAPY_TIMEOUT_SCALE="0.1"), timeout=300)
    took = time.monotonic() - start
    assert r.returncode == FAILED, (r.stdout + r.stderr)[-3000:]
    assert took < 120, took
    case = junit_case(box.out, "fault.hang")
    assert case.find("error") is not None and case.find("failure") is None
    assert "not ready within 12s" in case.find("error").get("message", "")  # type: ignore[union-attr]
    kept = {p.name for p in (box.out / "fault.hang").glob("*/*")}
    assert {"console.txt", "journal.txt", "qemu-stderr.txt", "ignition.json"} <= kept, kept
    # The failed boot's console and journal are in its JUnit testcase (files as they were kept).
    machine = case.find("properties/property[@name='kola.machines']")
    assert machine is not None and machine.get("value"), ET.tostring(case)[:2000]
    for stream in ("system-out", "system-err"):
        assert f"kolapy: {machine.get('value')}: the failed boot (" in (case.findtext(stream) or "")
    # (a blank disk writes nothing on the serial console: SeaBIOS talks to the VGA)
    box.assert_clean()
    assert sha256(image) == checksum


# ---- 9: an xdist worker killed mid-run ---------------------------------------------------------

KILLS_WORKER = """
import os, signal, time
from kolapy import kola

@kola(name="fault.w1")
def test_w1():
    time.sleep(1)

@kola(name="fault.worker-killed")
def test_worker_killed():
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGKILL)

@kola(name="fault.w2")
def test_w2():
    time.sleep(1)

@kola(name="fault.w3")
def test_w3():
    time.sleep(1)
"""


def test_xdist_worker_killed(box: Sandbox, blank: tuple[Path, str]) -> None:
    image, _ = blank
    r = box.run("fault.*", _tests(box, "wk", KILLS_WORKER), f"--nestos-image={image}", "-j", "2",
                timeout=300)
    assert r.returncode == FAILED, (r.stdout + r.stderr)[-3000:]
    case = junit_case(box.out, "fault.worker-killed")
    assert case.find("error") is not None, ET.tostring(case)[:2000]
    assert "crashed" in (case.find("error").text or "")  # type: ignore[union-attr]
    results = {t["name"]: t["result"] for t in
               json.loads((box.out / "reports" / "report.json").read_text())["tests"]}
    assert results.pop("fault.worker-killed") == "FAIL"
    # The others passed, or (xdist drops a crashed worker's queue) are named as never run:
    # in one stderr line and, by kola name, as infrastructure errors in report.json and JUnit.
    lost = [ln for ln in r.stderr.splitlines() if "never ran" in ln]
    for name in ("fault.w1", "fault.w2", "fault.w3"):
        if results[name] == "PASS":
            continue
        assert results[name] == "FAIL" and lost and f"@kola-{name}-" in lost[0], r.stderr
        error = junit_case(box.out, name).find("error")
        assert error is not None, name
        assert "never ran: it was queued on worker 'gw" in (error.text or ""), error.text
        assert "which crashed" in error.get("message", ""), error.get("message")
    box.assert_clean()
