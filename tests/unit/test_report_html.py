"""reports/report.html: the page, its timeline, regeneration and `kolapy report` (no VM)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from kolapy.report import write_all
from kolapy.report.events import emit, emit_test
from kolapy.report.html import regenerate, render_html, write_html
from kolapy.report.model import Result, SubtestRecord, TestRecord
from kolapy.report.timeline import build_timeline, run_events
from tests.browser import Browser, chromium_path

pytest_plugins = ["pytester"]

T0 = 1_800_000_000.0
SCRIPT = "<script>document.title='pwned'</script>"


def _records() -> list[TestRecord]:
    ok = SubtestRecord("basic/ssh-port", Result.PASS, 1.5, machines=["gw-1"], parent="basic",
                       console=f"[  1.0] kolapy {SCRIPT}\n", journal="sshd started\n")
    bad = SubtestRecord(
        "basic/useradd", Result.FAIL, 0.5, machines=["gw-1"], parent="basic",
        message="CommandFailedError: command 'useradd x' failed: exit code 1",
        output="command 'useradd x' failed\nstderr: useradd: nope",
        console="line a\n[ 12.3] Oops: 0002 [#1] planted\nline c\n", journal="j1\nj2\n",
    )
    basic = TestRecord("basic", Result.FAIL, 2.0, machines=["gw-1"], subtests=[ok, bad],
                       output="basic/useradd: FAIL", message="basic/useradd: boom")
    skip = TestRecord("isula.base", Result.SKIP, 0.0, reason="image has no isula")
    err = TestRecord("podman.base", Result.ERROR, 30.0, machines=["gw-2"],
                     message="BootError: no SSH", output="BootError: no SSH\ntraceback",
                     restored={"gw-2": "gw-t1"})
    warn = TestRecord("ostree.hotfix", Result.WARN, 4.0, machines=["gw-1"],
                      output="soft lockup: watchdog: BUG: soft lockup - CPU#0 stuck",
                      warnings=["soft lockup: watchdog: BUG: soft lockup - CPU#0 stuck"])
    return [basic, skip, err, warn]


def _events() -> list[dict[str, object]]:
    return [
        {"t": T0 - 100, "event": "booting", "machine": "old-1", "test": "x"},  # an earlier run
        {"t": T0 + 1, "event": "booting", "machine": "gw-1", "test": "basic", "worker": "gw"},
        {"t": T0 + 50, "event": "ready", "machine": "gw-1", "test": "basic"},
        {"t": T0 + 52, "event": "test", "machine": "gw-1", "machines": ["gw-1"],
         "test": "basic/ssh-port", "start": T0 + 50.5, "stop": T0 + 52, "outcome": "passed"},
        {"t": T0 + 53, "event": "test", "machine": "gw-1", "machines": ["gw-1"],
         "test": "basic/useradd", "start": T0 + 52.5, "stop": T0 + 53, "outcome": "failed"},
        {"t": T0 + 54, "event": "stopping", "machine": "gw-1"},
        {"t": T0 + 56, "event": "stopped", "machine": "gw-1"},
        {"t": T0 + 2, "event": "booting", "machine": "gw-2", "test": "podman.base",
         "restored_from": "gw-t1"},
        {"t": T0 + 32, "event": "failed", "machine": "gw-2", "error": "no SSH"},
        {"t": T0 + 33, "event": "stopped", "machine": "gw-2"},
    ]


PROPS = {
    "command_line": ["kolapy", "run", "basic"],
    "image": "/images/nestos-x86_64.qcow2",
    "image_sha256": "ab" * 32,
    "arch": "x86_64",
    "platform": "qemu",
    "kolapy_version": "0.1.0",
    "start_time": "2027-01-15T08:00:00+00:00",  # T0
    "end_time": "2027-01-15T08:01:00+00:00",
    "exit_status": 1,
}


class _Text(HTMLParser):
    """Text per element id, and every <script> body (to prove none came from a log)."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def _page(tmp_path: Path) -> str:
    return render_html(tmp_path, _records(), PROPS, _events())


def test_summary_counts_leaves_and_run_facts(tmp_path: Path) -> None:
    html = _page(tmp_path)
    counts = dict(re.findall(r'data-count="(\w+)"><b>([^<]+)</b>', html))
    # pytest's units: 2 subtests of basic, isula.base, podman.base, ostree.hotfix
    assert counts == {"FAIL": "1", "ERROR": "1", "WARN": "1", "PASS": "1", "SKIP": "1",
                      "total": "5", "wall": "1m00s"}
    assert 'id="overall">FAIL<' in html
    for fact in ("nestos-x86_64.qcow2", "ab" * 32, "x86_64", "qemu", "kolapy run basic"):
        assert fact in html, fact


def test_console_html_is_text_and_no_log_becomes_script(tmp_path: Path) -> None:
    html = _page(tmp_path)
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
    parser = _Text()
    parser.feed(html)
    assert len(parser.scripts) == 1 and "pwned" not in parser.scripts[0]


def test_failure_shows_message_and_badness_line(tmp_path: Path) -> None:
    html = _page(tmp_path)
    entry = html[html.index('id="t-basic-useradd"'):]
    entry = entry[: entry.index("</article>")]
    assert "command &#39;useradd x&#39; failed: exit code 1" in entry
    assert "kernel oops: [ 12.3] Oops: 0002 [#1] planted" in entry  # the matching line first
    # the error (no badness in its logs, no logs at all) still names its message
    err = html[html.index('id="t-podman.base"'):]
    assert "BootError: no SSH" in err[: err.index("</article>")]


def test_timeline_one_lane_per_machine_of_this_run(tmp_path: Path) -> None:
    html = _page(tmp_path)
    lanes = re.findall(r'<g class="lane" data-machine="([^"]+)"', html)
    assert lanes == ["gw-1", "gw-2"]  # old-1 belongs to an earlier run into the same dir
    # tests link to their entries; a restored machine says so
    assert '<a href="#t-basic-ssh-port"><rect class="seg seg-test res-passed"' in html
    assert '<a href="#t-basic-useradd"><rect class="seg seg-test res-failed"' in html
    assert "restored from the saved machine gw-t1" in html
    assert "seg seg-failed" in html and "seg seg-stop" in html


def test_timeline_segments() -> None:
    tl = build_timeline(run_events(_events(), T0), T0, T0 + 60)
    gw1, gw2 = tl.lanes
    assert [(s.kind, s.start, s.end) for s in gw1.segments] == [
        ("boot", 1.0, 50.0), ("ready", 50.0, 54.0), ("stop", 54.0, 56.0),
        ("test", 50.5, 52.0), ("test", 52.5, 53.0),
    ]
    assert gw1.shared and gw1.tests == ["basic/ssh-port", "basic/useradd"]
    assert [s.kind for s in gw2.segments] == ["failed"] and gw2.restored_from == "gw-t1"
    assert not gw1.open


def test_interrupted_lane_stays_open() -> None:
    events = [{"t": T0 + 1, "event": "booting", "machine": "gw-1", "test": "basic"}]
    (lane,) = build_timeline(events, T0, T0 + 20).lanes
    assert lane.open and [(s.kind, s.end) for s in lane.segments] == [("boot", 20.0)]


def test_events_of_the_last_run_without_a_start_time() -> None:
    earlier = [
        {"t": T0 - 100, "event": "booting", "machine": "gw-1", "test": "x"},
        {"t": T0 - 50, "event": "stopped", "machine": "gw-1"},
        {"t": T0 - 40, "event": "booting", "machine": "gw-2", "test": "x"},  # killed run
    ]
    got = run_events(earlier + _events()[1:], None)
    assert got[0]["t"] == T0 + 1 and {e["machine"] for e in got} == {"gw-1", "gw-2"}
    assert len(got) == len(_events()) - 1


def test_regenerated_page_equals_the_one_written_at_the_end(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for e in _events():
        (out).mkdir(exist_ok=True)
        with open(out / "events.jsonl", "a") as f:
            f.write(json.dumps(e) + "\n")
    art = out / "basic" / "gw-1"
    art.mkdir(parents=True)
    (art / "console.txt").write_text("x")
    write_all(out, _records(), PROPS)
    first = (out / "reports/report.html").read_text()
    assert 'href="../basic/gw-1/console.txt"' in first
    regenerate(out)
    assert (out / "reports/report.html").read_text() == first


def _kolapy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kolapy.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_kolapy_report_on_an_interrupted_run(tmp_path: Path) -> None:
    """A run killed while its first machine booted: only the event log is there."""
    emit(tmp_path, "booting", "gw-1", test="basic", worker="gw")
    emit_test(tmp_path, "basic/ssh-port", ["gw-1"], T0, T0 + 1, "passed")
    r = _kolapy("report", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "reports" / "report.html")
    html = (tmp_path / "reports/report.html").read_text()
    assert 'id="state">unfinished<' in html and 'data-machine="gw-1"' in html
    assert "No test finished in this run." in html


@pytest.mark.parametrize("kind", ["empty", "missing", "file"])
def test_kolapy_report_on_something_else_is_exit_2(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "x"
    if kind == "empty":
        target.mkdir()
    elif kind == "file":
        target.write_text("hi")
    r = _kolapy("report", str(target))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kolapy: error: ") and str(target) in lines[0]
    assert not (target / "reports").exists() if kind == "empty" else True


def test_write_html_is_atomic_and_reads_the_event_log(tmp_path: Path) -> None:
    emit(tmp_path, "booting", "gw-9", test="t")
    path = write_html(tmp_path, [], {})
    assert 'data-machine="gw-9"' in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


# -- through the plugin, with fake machines ---------------------------------------------

def test_a_pytest_run_writes_the_page(pytester: pytest.Pytester, tmp_path: Path) -> None:
    from tests.unit.test_live_plugin import CONFTEST, TESTS

    img = tmp_path / "img.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "64M"], check=True)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_kola=TESTS)
    out = tmp_path / "out"
    result = pytester.runpytest_subprocess(
        f"--nestos-image={img}", f"--kola-output-dir={out}", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2, failed=1, errors=1)
    html = (out / "reports/report.html").read_text()
    counts = dict(re.findall(r'data-count="(\w+)"><b>([^<]+)</b>', html))
    assert (counts["PASS"], counts["FAIL"], counts["ERROR"], counts["total"]) == ("2", "1", "1",
                                                                                  "4")
    assert re.findall(r'data-machine="([^"]+)"', html) == ["gw-1", "gw-2", "gw-3"]
    assert html.count("seg seg-test") == 3  # suite/one, suite/two, other
    props = json.loads((out / "properties.json").read_text())
    assert props["exit_status"] == 1 and props["image_sha256"] and props["start_time"]
    # regenerating from the files gives the same page
    before = html
    regenerate(out)
    assert (out / "reports/report.html").read_text() == before


# -- in a real browser ---------------------------------------------------------------

READY = "document.body && document.body.dataset.ready === '1'"


@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (./setup.sh)")
def test_page_in_headless_chromium(tmp_path: Path) -> None:
    """Filters and search work, the excerpt is visible, a console <script> is only text."""
    page = write_html(tmp_path, _records(), PROPS, _events())
    with Browser() as b:
        b.open(page.as_uri(), READY)
        assert b.eval("document.title").startswith("kolapy FAIL")  # no log's script ran
        assert b.eval("document.querySelectorAll('svg .lane').length") == 2
        assert b.eval("document.querySelector('#t-basic-useradd .excerpt pre')"
                      ".checkVisibility()")
        # open the console slice: the <script> of the log is on screen, as text
        b.eval("document.querySelector('#t-basic-ssh-port details summary').click()")
        shown = b.eval("document.querySelector('#t-basic-ssh-port pre.console').innerText")
        assert SCRIPT in shown
        b.eval("document.querySelector('input[data-result=PASS]').click()")
        visible = b.eval("[...document.querySelectorAll('.entry')]"
                         ".filter(e => e.checkVisibility()).map(e => e.id)")
        assert visible == ["t-basic", "t-basic-useradd", "t-isula.base", "t-podman.base",
                           "t-ostree.hotfix"]
        b.eval("const s = document.getElementById('search'); s.value = 'isula';"
               "s.dispatchEvent(new Event('input'))")
        assert b.eval("document.getElementById('shown').textContent") == "1 of 6 shown"
        shot = b.screenshot(tmp_path / "page.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_cut_after_some_tests_is_marked_interrupted(tmp_path: Path) -> None:
    html = render_html(tmp_path, _records(), {**PROPS, "exit_status": 2}, _events())
    assert 'id="state">interrupted<' in html and 'data-count="total"><b>5<' in html
    assert 'id="state"' not in _page(tmp_path)  # a finished run says nothing more
