"""The pytest plugin end to end with fake machines (no VM): sharing, slices, reports."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

FAKE_CONFTEST = """
import itertools, json, os
from pathlib import Path
import pytest
from kolapy.pool import MachinePool

COUNTER = itertools.count()

class FakeMachine:
    def __init__(self, name):
        self.name = name
        self.console = ""
        self.journal_text = ""
    def log_mark(self):
        return (len(self.console), len(self.journal_text))
    def logs_since(self, mark):
        return self.console[mark[0]:], self.journal_text[mark[1]:]
    def succeed(self, cmd):
        self.console += f"$ {cmd}\\n"
        if cmd.startswith("logger "):
            self.journal_text += cmd[len("logger "):] + "\\n"
        if cmd.startswith("false"):
            from kolapy.errors import CommandFailedError
            raise CommandFailedError(cmd, 1, "", "boom on stderr", "failed")
        return ""
    def stop(self):
        pass
    def write_artifacts(self, d):
        d.mkdir(parents=True, exist_ok=True)
        (d / "console.txt").write_text(self.console)
    def ssh_command(self):
        return "ssh fake"
    def is_running(self):
        return False

def fake_boot(self, spec, artifact_name):
    m = FakeMachine(f"fake-{os.getpid()}-{next(COUNTER)}")
    m.artifact_dir = self.output_dir / artifact_name / m.name
    with open(os.environ["BOOT_LOG"], "a") as f:
        f.write(json.dumps({"name": m.name, "test": artifact_name}) + "\\n")
    return m

MachinePool.boot = fake_boot
MachinePool.boot_or_restore = fake_boot  # fakes cannot be saved and restored
"""

TESTS = """
from kolapy import kola

pytestmark = kola(name="suite", exclusive=True)

def test_one(machine):
    machine.succeed("echo one")

def test_two(machine):
    machine.succeed("echo two")

@kola(name="shared.a", exclusive=False)
def test_shared_a(machine):
    machine.succeed("echo a")

@kola(name="shared.b", exclusive=False)
def test_shared_b(machine):
    machine.succeed("logger Oops: planted in b")

@kola(name="shared.c", exclusive=False)
def test_shared_c(machine):
    machine.succeed("false && echo c")

@kola(name="special", required_tag="special")
def test_special(machine):
    machine.succeed("echo special")
"""


@pytest.fixture
def image(tmp_path: Path) -> Path:
    img = tmp_path / "img.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "64M"], check=True)
    return img


@pytest.fixture
def run(pytester: pytest.Pytester, image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pytester.makeconftest(FAKE_CONFTEST)
    pytester.makepyfile(test_kola=TESTS)
    boot_log = tmp_path / "boots.jsonl"
    monkeypatch.setenv("BOOT_LOG", str(boot_log))
    out = tmp_path / "out"

    def go(*args: str) -> tuple[pytest.RunResult, list[dict[str, str]], Path]:
        result = pytester.runpytest_subprocess(
            f"--nestos-image={image}", f"--kola-output-dir={out}", "-p", "no:cacheprovider", *args
        )
        boots = (
            [json.loads(x) for x in boot_log.read_text().splitlines()] if boot_log.exists() else []
        )
        return result, boots, out

    return go


def _cases(out: Path) -> dict[str, ET.Element]:
    root = ET.parse(out / "reports" / "junit.xml").getroot()
    return {tc.get("name", ""): tc for tc in root.iter("testcase")}


def test_sharing_slices_badness_and_reports(run) -> None:
    result, boots, out = run()
    # suite (exclusive, two subtests) -> 1 machine; shared.{a,b,c} -> 1 machine
    assert sorted(b["test"] for b in boots) == ["shared.a", "suite"], boots
    result.assert_outcomes(passed=3, failed=2)

    cases = _cases(out)
    assert {"suite/one", "suite/two", "shared.a", "shared.b", "shared.c"} <= set(cases)
    assert "special" not in cases  # required tag not given
    # each testcase carries ITS slice
    assert "echo one" in cases["suite/one"].findtext("system-out", "")
    assert "echo two" not in cases["suite/one"].findtext("system-out", "")
    # planted oops in b's journal slice fails b, not a
    assert cases["shared.b"].find("failure") is not None
    assert "Oops" in (
        cases["shared.b"].find("failure").get("message", "")
        + (cases["shared.b"].find("failure").text or "")
    )
    assert cases["shared.a"].find("failure") is None
    # a failing command shows command, exit code and stderr
    failure = cases["shared.c"].find("failure")
    text = failure.get("message", "") + (failure.text or "")
    assert "false && echo c" in text and "exit code 1" in text and "boom on stderr" in text

    report = json.loads((out / "reports" / "report.json").read_text())
    by_name = {t["name"]: t for t in report["tests"]}
    assert by_name["suite"]["result"] == "PASS"
    assert len(by_name["suite"]["machines"]) == 1
    assert by_name["shared.c"]["result"] == "FAIL"
    assert (out / "test.tap").exists()


def test_required_tag_and_patterns(run) -> None:
    result, boots, _ = run("--tag=special", "--kola-pattern=special")
    result.assert_outcomes(passed=1)
    assert [b["test"] for b in boots] == ["special"]


def test_unmatched_pattern_is_exit_2(run) -> None:
    result, boots, _ = run("--kola-pattern=nope*")
    assert result.ret == 2
    assert "nope*" in result.stdout.str() + result.stderr.str()
    assert boots == []


def test_xdist_groups_keep_shared_machines_together(run) -> None:
    result, boots, out = run("-n", "2")
    result.assert_outcomes(passed=3, failed=2)
    assert sorted(b["test"] for b in boots) == ["shared.a", "suite"], boots
    assert {"suite/one", "shared.c"} <= set(_cases(out))


def test_invalid_ignition_is_exit_2_before_any_boot(run, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_badcfg="""
from kolapy import kola

@kola(name="badcfg", ignition={"ignition": {"version": "3.3.0"},
                               "storage": {"files": [{"path": "etc/relative"}]}})
def test_x(machine):
    pass
"""
    )
    result, boots, _ = run()
    assert result.ret == 2
    text = result.stdout.str() + result.stderr.str()
    assert "badcfg" in text and "etc/relative" in text
    assert boots == []
