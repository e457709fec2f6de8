"""expect_boot_failure: passes only on the expected emergency, fails on anything else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kolapy import BootFailure, expect_boot_failure
from kolapy.errors import BootError, EmergencyError
from kolapy.expect import BootFailureMismatch, analyse
from kolapy.transport.journal import render_journal

T0 = 1_764_633_600.0  # guest clock of the first entry


def _entry(t: float, ident: str, message: str) -> dict[str, str]:
    return {"__REALTIME_TIMESTAMP": str(int((T0 + t) * 1e6)), "SYSLOG_IDENTIFIER": ident,
            "_PID": "1", "MESSAGE": message}


FILES_FAILURE = [
    _entry(0.0, "systemd", "Starting ignition-files.service - Ignition (files)..."),
    _entry(1.0, "ignition", "files: createFilesystemsFiles: createFiles: op(1): "
                            "[failed]   creating file \"/sysroot/etc/passwd/x\": not a directory"),
    _entry(1.2, "ignition", "files failed"),
    _entry(1.3, "systemd", "ignition-files.service: Main process exited, code=exited, "
                           "status=1/FAILURE"),
    _entry(1.4, "systemd", "Failed to start ignition-files.service - Ignition (files)."),
    _entry(4.0, "systemd", "Starting kolapy-dump-journal.service..."),
]


def _error(entries: list[dict[str, str]], detected_after: float) -> EmergencyError:
    raw = ("\n".join(json.dumps(e) for e in entries) + "\n{}\n").encode()
    return EmergencyError("gw-1: the initramfs reported an emergency", render_journal(raw),
                          raw_journal=raw, detected_at=T0 + 1.0 + detected_after)


def test_analyse_finds_stage_line_and_times() -> None:
    failure = analyse(_error(FILES_FAILURE, detected_after=7.5))
    assert failure.stage == "files"
    assert "ignition-files.service" in failure.stage_line
    assert failure.ignition_lines[0].startswith("files: createFilesystemsFiles")
    # measured from the failing unit's line (guest 1.3 s), not from Ignition's first error
    assert failure.detection_seconds == pytest.approx(7.2)
    assert failure.guest_seconds == pytest.approx(2.7)
    assert "stage files" in failure.summary() and "7.2 s" in failure.summary()


def test_neednet_note_is_not_an_error() -> None:
    entries = [_entry(0.0, "ignition", "failed to fetch config: resource requires networking"),
               *FILES_FAILURE]
    failure = analyse(_error(entries, detected_after=5))
    assert all("requires networking" not in line for line in failure.ignition_lines)
    assert failure.stage == "files"


def test_expected_failure_passes() -> None:
    with expect_boot_failure(stage="files", match="not a directory", within=60) as failure:
        raise _error(FILES_FAILURE, detected_after=5)
    assert isinstance(failure, BootFailure) and failure.stage == "files"
    assert "not a directory" in failure.journal


def test_boot_that_succeeds_fails_the_test() -> None:
    came_up = pytest.raises(BootFailureMismatch, match="but the machine came up")
    with came_up, expect_boot_failure(stage="files"):
        pass


def test_other_boot_error_fails_the_test() -> None:
    otherwise = pytest.raises(BootFailureMismatch, match="failed otherwise: no SSH")
    with otherwise, expect_boot_failure():
        raise BootError("no SSH within 600s")


def test_wrong_stage_fails_the_test() -> None:
    mismatch = pytest.raises(BootFailureMismatch, match="expected Ignition stage fetch")
    with mismatch, expect_boot_failure(stage="fetch"):
        raise _error(FILES_FAILURE, detected_after=5)


def test_wrong_journal_text_fails_the_test() -> None:
    mismatch = pytest.raises(BootFailureMismatch, match="no match for 'hash'")
    with mismatch, expect_boot_failure(match="hash"):
        raise _error(FILES_FAILURE, detected_after=5)


def test_slow_detection_fails_the_test() -> None:
    mismatch = pytest.raises(BootFailureMismatch, match=r"reported 90\.0 s after")
    with mismatch, expect_boot_failure(within=60):
        raise _error(FILES_FAILURE, detected_after=90.3)


def test_unknown_stage_is_bad_usage() -> None:
    mismatch = pytest.raises(ValueError, match="unknown Ignition stage")
    with mismatch, expect_boot_failure(stage="file"):
        pass


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(KeyError), expect_boot_failure():
        raise KeyError("x")


def test_mismatch_is_a_test_failure_not_an_error() -> None:
    assert issubclass(BootFailureMismatch, AssertionError)


def test_bootwatch_error_carries_raw_journal_and_detection_time(tmp_path: Path) -> None:
    import time

    from kolapy.machine.bootwatch import BootWatch
    from kolapy.transport.console import ConsoleLog
    from kolapy.transport.journal import JournalLog

    raw = ("\n".join(json.dumps(e) for e in FILES_FAILURE) + "\n{}\n").encode()
    (tmp_path / "emergency.json").write_bytes(raw)
    (tmp_path / "console.txt").write_text("")
    watch = BootWatch("m1", ConsoleLog(tmp_path / "console.txt"),
                      JournalLog(tmp_path / "emergency.json"), settle=0.1)
    before = time.time()
    with pytest.raises(EmergencyError) as info:
        watch.check()
    err = info.value
    assert err.raw_journal == raw
    assert err.detected_at is not None and before <= err.detected_at <= time.time()
    assert analyse(err).stage == "files"
