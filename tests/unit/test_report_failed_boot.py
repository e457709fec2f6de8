"""A boot that fails in fixture setup keeps its console and journal for the JUnit testcase."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from kolapy.errors import BootError
from kolapy.report import bootlog
from kolapy.report.bootlog import failed_boot


def test_failed_boot_reads_the_kept_files(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "console.txt").write_text("SeaBIOS\n" + "x" * 100 + "\nKernel panic\n")
    exc = BootError("gw0-1: not ready")
    exc.kolapy_machine = SimpleNamespace(name="gw0-1", artifact_dir=tmp_path)  # type: ignore[attr-defined]
    monkeypatch.setattr(bootlog, "FAILED_BOOT_TAIL", 20)  # only the end of a long console
    name, console, journal = failed_boot(exc)  # type: ignore[misc]
    assert name == "gw0-1"
    assert console.startswith("===== kolapy: gw0-1: the failed boot (")
    assert console.endswith("xxxxxx\nKernel panic\n") and "SeaBIOS" not in console
    assert "journal.txt unavailable" in journal  # never written: said, not raised


def test_other_errors_have_no_boot() -> None:
    assert failed_boot(ValueError("x")) is None
