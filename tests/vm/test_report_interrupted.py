"""An interrupted `kolapy run` still leaves reports/report.html, and `kolapy report` rebuilds it;
a test stopped in its body is reported with its machine and why it has no result.

CI cost: the first test does not boot: QEMU starts on a blank disk (no OS), so the
machine sits in its boot until the run is interrupted a few seconds later (~15 s in
all); the second boots the reference image once (~60 s).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

KOLAPY = [sys.executable, "-m", "kolapy.cli"]

HANGS = """
from kolapy import kola

@kola(name="report.cut")
def test_cut(machine):
    machine.succeed("true")
"""


def _seen(out: Path, event: str) -> bool:
    try:
        lines = (out / "events.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return False
    return any(json.loads(line)["event"] == event for line in lines)


def _interrupt_run(tmp_path: Path, name: str, source: str, image: Path, event: str,
                   within: float, settle: float) -> Path:
    """`kolapy run <name>` of ``source`` on ``image``, Ctrl-C'd ``settle`` s after its
    machine's ``event``; asserts the run exits 130 (interrupted), returns its output dir."""
    (tmp_path / "test_src.py").write_text(source)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*KOLAPY, "run", name, f"--tests={tmp_path / 'test_src.py'}",
         f"--nestos-image={image}", f"--output-dir={out}", "--live=plain"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + within
        while not _seen(out, event):
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.monotonic() < deadline, f"no {event} event within {within} s"
            time.sleep(0.2)
        time.sleep(settle)
        proc.send_signal(signal.SIGINT)
        text = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, text[-3000:]  # kolapy run: interrupted (docs/cli.md)
    return out


def test_interrupted_run_has_a_page_and_kolapy_report_rebuilds_it(tmp_path: Path) -> None:
    blank = tmp_path / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(blank), "256M"], check=True)
    # 3 s after QEMU is up, waiting for a guest that never comes
    out = _interrupt_run(tmp_path, "report.cut", HANGS, blank, "booting", 120, 3)

    page = out / "reports" / "report.html"
    html = page.read_text()
    assert 'id="state">interrupted<' in html, html[:3000]
    assert html.count('<g class="lane"') == 1 and 'data-machine="gw-1"' in html
    assert "No test finished in this run." in html
    assert json.loads((out / "properties.json").read_text())["exit_status"] == 2

    page.unlink()
    r = subprocess.run([*KOLAPY, "report", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(page)
    assert page.read_text() == html  # the same page, from the files alone


SLEEPS = """
from kolapy import kola

@kola(name="report.sleeps")
def test_sleeps(machine):
    machine.succeed("sleep 600")
"""


def test_test_stopped_in_its_body_names_its_machine(tmp_path: Path, ref_image: Path) -> None:
    # 5 s after the machine is ready: in the test's `sleep 600`
    out = _interrupt_run(tmp_path, "report.sleeps", SLEEPS, ref_image, "ready", 900, 5)
    report = json.loads((out / "reports" / "report.json").read_text())
    (entry,) = [t for t in report["tests"] if t["name"] == "report.sleeps"]
    assert entry["result"] == "FAIL", entry  # kola's JSON has no ERROR
    assert entry["machines"] == ["gw-1"], entry
    assert entry["output"].startswith("did not finish"), entry
