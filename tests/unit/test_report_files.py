"""junit.xml, report.json, test.tap, properties.json, output dir, summary."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from kolapy.errors import BadInputError
from kolapy.report import write_all
from kolapy.report.kola_json import report_dict
from kolapy.report.model import Result, SubtestRecord, TestRecord
from kolapy.report.outdir import default_output_dir, make_output_dir, test_artifact_dir
from kolapy.report.properties import collect_properties, file_sha256
from kolapy.report.summary import render_summary
from kolapy.report.tap import tap_text


def sample() -> list[TestRecord]:
    ssh = SubtestRecord(
        "basic/ssh-port",
        Result.PASS,
        2.5,
        machines=["basic-1"],
        console="ssh console <ok>",
        journal="ssh journal",
        parent="basic",
    )
    dbus = SubtestRecord(
        "basic/dbus",
        Result.FAIL,
        1.25,
        output="command 'busctl' rc=1\nstderr: x",
        message="command 'busctl' failed",
        machines=["basic-1"],
        console="dbus console",
        journal="dbus journal",
        parent="basic",
    )
    basic = TestRecord(
        "basic",
        Result.FAIL,
        3.75,
        output="basic/dbus: FAIL",
        machines=["basic-1"],
        subtests=[ssh, dbus],
    )
    boot = TestRecord(
        "podman.base",
        Result.ERROR,
        300.0,
        output="BootError: no SSH",
        message="BootError: no SSH in 300 s",
        machines=["podman-1"],
    )
    skip = TestRecord("isula.base", Result.SKIP, 0.0, reason="denylisted: https://bugs/1")
    warn = TestRecord(
        "ostree.x",
        Result.WARN,
        1.0,
        output="soft lockup",
        machines=["o-1"],
        warnings=["kernel soft lockup: watchdog: BUG"],
    )
    return [basic, boot, skip, warn]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    write_all(
        tmp_path, sample(), {"platform": "qemu", "os_version": "22.03.20260101", "arch": "x86_64"}
    )
    return tmp_path


def test_junit_structure(out: Path) -> None:
    root = ET.parse(out / "reports" / "junit.xml").getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert list(cases) == [
        "basic",
        "basic/ssh-port",
        "basic/dbus",
        "podman.base",
        "isula.base",
        "ostree.x",
    ]
    assert all(c.get("classname") == "kola" for c in cases.values())
    ssh = cases["basic/ssh-port"]
    assert ssh.findtext("system-out") == "ssh console <ok>"
    assert ssh.findtext("system-err") == "ssh journal"
    assert ssh.find("failure") is None
    dbus = cases["basic/dbus"]
    assert dbus.findtext("system-out") == "dbus console"  # its own slice only
    failure = dbus.find("failure")
    assert failure is not None and failure.get("message") == "command 'busctl' failed"
    assert "rc=1" in (failure.text or "")
    assert cases["podman.base"].find("error") is not None
    assert cases["podman.base"].find("failure") is None
    skipped = cases["isula.base"].find("skipped")
    assert skipped is not None and "bugs/1" in (skipped.get("message") or "")
    props = {p.get("name"): p.get("value") for p in cases["ostree.x"].iter("property")}
    assert props["kola.result"] == "WARN"
    assert props["kola.warning"] == "kernel soft lockup: watchdog: BUG"
    assert cases["ostree.x"].find("failure") is None
    assert float(cases["basic/dbus"].get("time")) == pytest.approx(1.25)


def test_report_json(out: Path) -> None:
    doc = json.loads((out / "reports" / "report.json").read_text())
    assert set(doc) == {"tests", "result", "platform", "version"}
    assert doc["result"] == "FAIL"
    assert doc["platform"] == "qemu"
    assert doc["version"] == "22.03.20260101"
    by_name = {t["name"]: t for t in doc["tests"]}
    for t in doc["tests"]:
        assert {"name", "subtests", "result", "duration", "output", "machines"} <= set(t)
        assert isinstance(t["duration"], int)
    assert [t["name"] for t in doc["tests"]][:3] == ["basic/ssh-port", "basic/dbus", "basic"]
    assert by_name["basic"]["subtests"] == ["basic/ssh-port", "basic/dbus"]
    assert by_name["basic"]["duration"] == 3_750_000_000
    assert by_name["podman.base"]["result"] == "FAIL"  # kola has no ERROR
    assert by_name["isula.base"]["result"] == "SKIP"
    assert by_name["ostree.x"]["result"] == "WARN"
    assert by_name["basic/ssh-port"]["machines"] == ["basic-1"]


def test_report_json_output_falls_back_to_the_message() -> None:
    cut = TestRecord("basic", Result.ERROR, message="did not finish: the run stopped")
    (entry,) = report_dict([cut])["tests"]
    assert entry["result"] == "FAIL" and entry["output"] == "did not finish: the run stopped"


def test_report_json_passes_with_warn_and_skip() -> None:
    recs = [TestRecord("a", Result.WARN), TestRecord("b", Result.SKIP), TestRecord("c")]
    assert report_dict(recs)["result"] == "PASS"


def test_tap(out: Path) -> None:
    text = (out / "test.tap").read_text()
    assert text == tap_text(sample())
    lines = text.splitlines()
    assert lines[:3] == ["TAP version 13", "1..4", "not ok 1 - basic"]
    assert "not ok 2 - podman.base" in lines
    assert "ok 3 - isula.base # SKIP denylisted: https://bugs/1" in lines
    assert "ok 4 - ostree.x" in lines
    assert any(line.startswith("# WARN: kernel soft lockup") for line in lines)
    assert tap_text([TestRecord("a#b")]).splitlines()[2] == "ok 1 - ab"


def test_properties(out: Path) -> None:
    props = json.loads((out / "properties.json").read_text())
    assert props["platform"] == "qemu" and props["arch"] == "x86_64"
    assert "python_version" in props


def test_collect_properties(tmp_path: Path) -> None:
    image = tmp_path / "img.qcow2"
    image.write_bytes(b"abc")
    props = collect_properties(
        command_line=["kolapy", "run"],
        image=image,
        arch="x86_64",
        accel="tcg",
        image_sha256=True,
        distro="nestos",
    )
    assert props["image_sha256"] == file_sha256(image)
    assert props["image_sha256"].startswith("ba7816bf")
    assert props["command_line"] == ["kolapy", "run"]
    assert props["distro"] == "nestos"
    assert "kolapy_version" in props


def test_default_output_dir() -> None:
    now = dt.datetime(2026, 11, 27, 9, 5)
    assert default_output_dir("qemu", now=now, pid=42) == Path("_kola_temp/qemu-2026-11-27-0905-42")


def test_make_output_dir_and_latest_link(tmp_path: Path) -> None:
    base = tmp_path / "_kola_temp"
    first = make_output_dir(base / "qemu-2026-11-27-0905-1", "qemu")
    assert first.is_dir()
    link = base / "qemu-latest"
    assert os.readlink(link) == "qemu-2026-11-27-0905-1"
    second = make_output_dir(base / "qemu-2026-11-27-0906-2", "qemu")
    assert os.readlink(link) == "qemu-2026-11-27-0906-2"
    assert link.resolve() == second.resolve()
    # a user-chosen dir gets no link beside it
    make_output_dir(tmp_path / "mine", "qemu")
    assert not (tmp_path / "qemu-latest").exists()


def test_latest_link_refuses_to_clobber_a_file(tmp_path: Path) -> None:
    base = tmp_path / "_kola_temp"
    base.mkdir()
    (base / "qemu-latest").write_text("not a link")
    with pytest.raises(BadInputError, match="not a symlink"):
        make_output_dir(base / "qemu-x", "qemu")


def test_artifact_dir_is_per_kola_test(tmp_path: Path) -> None:
    assert (
        test_artifact_dir(tmp_path, "basic/ssh-port", "basic-1") == tmp_path / "basic" / "basic-1"
    )
    assert test_artifact_dir(tmp_path, "..", "a/b") == tmp_path / "_" / "a_b"


def test_summary_plain_when_not_a_tty() -> None:
    buf = io.StringIO()
    render_summary(sample(), Console(file=buf, width=120))
    text = buf.getvalue()
    assert "\x1b[" not in text
    assert "basic" in text and "ssh-port" in text and "ERROR" in text
    assert "1 WARN, 1 FAIL, 1 ERROR, 1 SKIP" in text


def test_summary_coloured_on_a_terminal() -> None:
    buf = io.StringIO()
    render_summary(sample(), Console(file=buf, width=120, force_terminal=True))
    assert "\x1b[" in buf.getvalue()


class FakeTerminalReporter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str) -> None:
        self.lines.append(line)


def test_summary_to_a_pytest_terminal_reporter() -> None:
    tr = FakeTerminalReporter()
    render_summary(sample(), tr)
    assert any("podman.base" in line for line in tr.lines)
    assert not any("\x1b[" in line for line in tr.lines)
