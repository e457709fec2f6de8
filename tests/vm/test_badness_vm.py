"""A kernel oops planted on a real VM's console fails the test that caused it, not others;
and the run's reports/report.html, opened in headless chromium, shows it.

CI cost: ONE boot (the four plant.* tests share one machine; plant.skipped needs
none).  Both tests here read that one run, so they stay on one xdist worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import Browser, chromium_path

pytestmark = [pytest.mark.vm, pytest.mark.xdist_group("planted-oops")]

KOLA_TESTS = '''
import pytest
from kolapy import kola


@kola(name="plant.before", exclusive=False)
def test_before(machine):
    # HTML on the console: the report must show it as text, never run it
    line = "<4>kolapy: <script>window.kolapyPwned = 1</script>"
    machine.succeed(f"echo '{line}' | sudo tee /dev/kmsg")


@kola(name="plant.oops", exclusive=False)
def test_oops(machine):
    # printk at KERN_WARNING reaches the serial console (and the journal)
    machine.succeed("echo '<4>Oops: 0002 [#1] planted by kolapy' | sudo tee /dev/kmsg")


@kola(name="plant.skipped", exclusive=False)
def test_skipped():
    pytest.skip("nothing to plant here")


@kola(name="plant.after", exclusive=False)
def test_after(machine):
    machine.succeed("true")
'''


@pytest.fixture(scope="module")
def planted_run(ref_image: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The output dir of one run of the plant.* tests, and pytest's output."""
    tmp_path = tmp_path_factory.mktemp("planted")
    (tmp_path / "test_plant.py").write_text(KOLA_TESTS)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--nestos-image={ref_image}", f"--kola-output-dir={out}",
         str(tmp_path / "test_plant.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=1500,
    )
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-2000:]
    return out, proc.stdout


def test_planted_oops_fails_only_its_test(planted_run: tuple[Path, str]) -> None:
    out, _ = planted_run
    report = json.loads((out / "reports" / "report.json").read_text())
    by_name = {t["name"]: t for t in report["tests"]}
    assert by_name["plant.oops"]["result"] == "FAIL", by_name["plant.oops"]
    assert "planted by kolapy" in by_name["plant.oops"]["output"]
    assert by_name["plant.before"]["result"] == "PASS", by_name["plant.before"]["output"]
    assert by_name["plant.after"]["result"] == "PASS", by_name["plant.after"]["output"]
    assert by_name["plant.skipped"]["result"] == "SKIP"
    # all three shared one machine, and the oops is in that machine's console log
    machines = {m for t in report["tests"] for m in t["machines"]}
    assert len(machines) == 1
    (console,) = out.glob("*/*/console.txt")
    assert "planted by kolapy" in console.read_text(errors="replace")


READY = "document.body && document.body.dataset.ready === '1'"


@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (./setup.sh)")
def test_html_report_in_a_browser(planted_run: tuple[Path, str], tmp_path: Path) -> None:
    """Pass, failure and skip as a person sees them: counts, the failing line, the lanes."""
    out, _ = planted_run
    page = out / "reports" / "report.html"
    with Browser(height=1000) as b:
        b.open(page.as_uri(), READY)
        counts = b.eval("Object.fromEntries([...document.querySelectorAll('[data-count]')]"
                        ".map(c => [c.dataset.count, c.querySelector('b').textContent]))")
        assert {k: counts[k] for k in ("PASS", "FAIL", "SKIP", "ERROR", "total")} == {
            "PASS": "2", "FAIL": "1", "SKIP": "1", "ERROR": "0", "total": "4"}, counts
        # the failure's excerpt, on screen without a click: the matching badness line
        excerpt = "document.querySelector('#t-plant\\\\.oops .excerpt pre')"
        assert b.eval(f"{excerpt}.checkVisibility()")
        assert "Oops: 0002 [#1] planted by kolapy" in b.eval(f"{excerpt}.innerText")
        # one lane per machine: the one shared machine, its three tests drawn on it
        assert b.eval("document.querySelectorAll('svg .lane').length") == 1
        assert b.eval("document.querySelectorAll('svg .seg-test').length") == 3
        assert b.eval("document.querySelector('svg a[href=\"#t-plant.oops\"] .res-failed')"
                      " !== null")
        # the console's <script> line: on screen as text, never run
        b.eval("document.querySelector('#t-plant\\\\.before details summary').click()")
        console = b.eval("document.querySelector('#t-plant\\\\.before pre.console').innerText")
        assert "<script>window.kolapyPwned = 1</script>" in console
        assert b.eval("typeof window.kolapyPwned") == "undefined"
        b.eval("document.querySelector('#t-plant\\\\.before details').open = false")
        shot = b.screenshot(tmp_path / "report.png")
    print(f"screenshot of {page}: {shot}")
    assert shot.stat().st_size > 10_000
