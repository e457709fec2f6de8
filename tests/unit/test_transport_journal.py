"""Rendering the JSON journal stream (virtio port) as readable text."""

from __future__ import annotations

import json

from kolapy.transport.journal import (
    JournalLog,
    failure_lines,
    last_cursor,
    render_entry,
    render_journal,
)

E1 = {"__REALTIME_TIMESTAMP": "1700000000123456", "_HOSTNAME": "nest", "SYSLOG_IDENTIFIER":
      "ignition", "_PID": "42", "MESSAGE": "failed to fetch config", "__CURSOR": "c1"}
E2 = {"__REALTIME_TIMESTAMP": "1700000001000000", "_TRANSPORT": "kernel",
      "MESSAGE": [104, 105, 255], "__CURSOR": "c2"}


def _lines(*entries):
    return "".join(json.dumps(e) + "\n" for e in entries)


def test_render_entry_like_journalctl_short():
    line = render_entry(E1)
    assert line == "Nov 14 22:13:20.123456 nest ignition[42]: failed to fetch config"


def test_byte_array_messages_and_kernel_entries():
    line = render_entry(E2)
    assert "kernel:" in line and line.endswith("hi\ufffd")


def test_render_stops_at_end_marker_and_skips_junk():
    text = _lines(E1) + "not json\n" + _lines({}) + _lines(E2)
    out = render_journal(text)
    assert out.count("\n") == 1
    assert "ignition[42]" in out and "kernel" not in out


def test_torn_last_line_is_skipped():
    text = _lines(E1) + '{"MESSAGE": "half'
    assert render_journal(text.encode()).splitlines() == [render_entry(E1)]


def test_last_cursor():
    assert last_cursor(_lines(E1, E2)) == "c2"
    assert last_cursor("") is None


def test_journal_log_offsets_never_split_an_entry(tmp_path):
    path = tmp_path / "journal.json"
    log = JournalLog(path)
    assert log.mark() == 0 and not log.has_content() and log.text_since(0) == ""
    path.write_text(_lines(E1))
    mark = log.mark()
    with path.open("a") as f:
        f.write(_lines(E2) + '{"MESSAGE": "par')
    assert log.mark() == len(_lines(E1, E2).encode())
    since = log.text_since(mark)
    assert "kernel" in since and "ignition" not in since


def test_failure_lines_pick_the_reason():
    text = "\n".join([
        "Nov 27 kernel: calibrate_delay_direct() failed to get a good estimate",
        "Nov 27 localhost ignition[207]: error at line 1 col 3: invalid character 'o'",
        "Nov 27 localhost ignition[207]: Ignition failed: config is not valid",
        "Nov 27 localhost systemd[1]: Failed to start ignition-fetch-offline.service",
        "Nov 27 localhost systemd[1]: Stopped target sockets.target",
    ])
    lines = failure_lines(text)
    assert len(lines) == 3
    assert "invalid character" in lines[0] and "Failed to start" in lines[2]
    assert failure_lines("all good\n") == []
