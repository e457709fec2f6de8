"""ConsoleLog: offsets, slices and regex waits on a file that keeps growing."""

from __future__ import annotations

import threading
import time

import pytest

from kolapy.errors import TimeoutExpired
from kolapy.transport.console import ConsoleLog, clean_console_text


def test_mark_and_slices(tmp_path):
    path = tmp_path / "console.txt"
    log = ConsoleLog(path)
    assert log.mark() == 0 and log.text_since(0) == ""
    path.write_bytes(b"boot line 1\r\n")
    mark = log.mark()
    with path.open("ab") as f:
        f.write(b"\x1b[0;32m  OK  \x1b[0m] Reached target\r\n")
    assert log.text_since(mark) == "  OK  ] Reached target\n"
    assert log.text_since(0).startswith("boot line 1\n")


def test_wait_for_sees_text_appended_later(tmp_path):
    path = tmp_path / "console.txt"
    path.write_text("old: login:\n")
    log = ConsoleLog(path)

    def writer():
        time.sleep(0.5)
        with path.open("a") as f:
            f.write("Welcome\nnest log")
            f.flush()
            time.sleep(0.3)
            f.write("in: ready\n")

    t = threading.Thread(target=writer)
    t.start()
    start = time.monotonic()
    match = log.wait_for(r"nest login: (\w+)", timeout=10)
    t.join()
    assert match.group(1) == "ready"
    assert time.monotonic() - start < 5


def test_wait_for_from_now_ignores_old_text(tmp_path):
    path = tmp_path / "console.txt"
    path.write_text("Kernel panic - not syncing: old\n")
    with pytest.raises(TimeoutExpired, match="Kernel panic") as exc:
        ConsoleLog(path).wait_for("Kernel panic", timeout=0.5)
    assert "last lines" in str(exc.value)
    assert ConsoleLog(path).wait_for("Kernel panic", timeout=0.5, since=0)


def test_tail_and_search(tmp_path):
    path = tmp_path / "console.txt"
    path.write_text("".join(f"line {i}\n" for i in range(100)))
    log = ConsoleLog(path)
    assert log.tail(2) == "line 98\nline 99"
    assert log.search(r"line 5\d").group(0) == "line 50"


def test_clean_console_text():
    assert clean_console_text("a\r\nb\x1b[2Jc\x1bc") == "a\nbc"
