"""Each machine's boot goes to the first testcase that used it; parents carry their subtests'."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from kolapy.machine.base import LogMark
from kolapy.report.bootlog import BootLogs
from kolapy.report.junit import junit_xml_text
from kolapy.report.model import SubtestRecord, TestRecord


@dataclass
class FakeMachine:
    """Console and journal as growing strings; marks are offsets into them."""

    name: str
    console: str = ""
    journal: str = ""
    template: object | None = None
    calls: list[LogMark] = field(default_factory=list)

    def log_mark(self) -> LogMark:
        return LogMark(len(self.console), len(self.journal))

    def logs_since(self, mark: LogMark) -> tuple[str, str]:
        self.calls.append(mark)
        return self.console[mark.console_offset:], self.journal[mark.journal_offset:]


def test_first_testcase_gets_the_boot_later_ones_their_slice() -> None:
    m = FakeMachine("basic-1", "SeaBIOS\nLinux version 6.1\nlogin:\n",
                    "kernel: Linux version 6.1\n")
    mark = m.log_mark()  # handed to the first test once ready
    m.console += "test one\n"
    m.journal += "one ran\n"
    logs = BootLogs()
    console, journal = logs.slice(m, mark)
    assert "Linux version 6.1" in console and console.endswith("test one\n")
    assert "kernel: Linux version 6.1" in journal and journal.endswith("one ran\n")
    assert "basic-1 from QEMU's start" in console
    mark2 = m.log_mark()
    m.console += "test two\n"
    assert logs.slice(m, mark2)[0] == "test two\n"  # no boot again


@dataclass
class FakeTemplate:
    directory: Path


def test_a_restored_clone_carries_its_templates_boot(tmp_path: Path) -> None:
    (tmp_path / "console.txt").write_text("Linux version 6.1 (template)\n")
    (tmp_path / "journal.json").write_text(
        '{"__CURSOR":"c1","MESSAGE":"Linux version 6.1","SYSLOG_IDENTIFIER":"kernel",'
        '"__REALTIME_TIMESTAMP":"1700000000000000"}\n')
    m = FakeMachine("gw0-2", "clone console\n", "", template=FakeTemplate(tmp_path))
    console, journal = BootLogs().slice(m, m.log_mark())
    assert console.index("Linux version 6.1 (template)") < console.index("clone console")
    assert f"restored from {tmp_path.name}" in console
    assert "Linux version 6.1" in journal


def test_no_testcase_of_a_parent_without_own_run_lacks_logs() -> None:
    from kolapy.report.collector import _roll_up

    subs = [SubtestRecord(name="basic/ssh-port", parent="basic", console="boot Linux version\n",
                          journal="j1"),
            SubtestRecord(name="basic/dbus-perms", parent="basic", console="c2", journal="j2")]
    top = TestRecord(name="basic", subtests=subs)
    _roll_up(top, own=False)
    assert "----- basic/ssh-port -----" in top.console and "c2" in top.console
    assert "j1" in top.journal and "j2" in top.journal
    root = ET.fromstring(junit_xml_text([top]).split("\n", 1)[1])
    cases = root.findall(".//testcase")
    assert len(cases) == 3
    for case in cases:
        assert (case.findtext("system-out") or "").strip(), case.get("name")
        assert (case.findtext("system-err") or "").strip(), case.get("name")
