"""One journal file per boot: the stream is cut by ``_BOOT_ID`` (no VM)."""

from __future__ import annotations

import json

from kolapy.transport.journal import render_journal, split_by_boot_id


def _line(boot: str, msg: str) -> bytes:
    entry = {"_BOOT_ID": boot, "MESSAGE": msg, "SYSLOG_IDENTIFIER": "t"}
    return (json.dumps(entry) + "\n").encode()


def test_split_by_boot_id_keeps_order_and_torn_lines() -> None:
    raw = (_line("a", "one") + _line("a", "reboot") + b"not json\n"
           + _line("b", "Linux version 6") + _line("b", "two") + _line("c", "three"))
    chunks = split_by_boot_id(raw)
    assert [render_journal(c).count("\n") for c in chunks] == [2, 2, 1]
    assert "reboot" in render_journal(chunks[0]) and "Linux version" in render_journal(chunks[1])
    assert b"".join(chunks) == raw  # nothing lost, nothing duplicated


def test_split_by_boot_id_one_boot_and_empty() -> None:
    one = _line("a", "x") + _line("a", "y")
    assert split_by_boot_id(one) == [one]
    assert split_by_boot_id(b"") == []


def _entry(boot: str, msg: str) -> bytes:
    """As journalctl -o json writes it (fields in no fixed order; a message may hold '{')."""
    entry = {"_TRANSPORT": "kernel", "_BOOT_ID": boot, "MESSAGE": f'{msg} {{"x": 1}}',
             "__CURSOR": f"s={boot};i=1"}
    return (json.dumps(entry) + "\n").encode()


def test_entry_glued_to_a_torn_shutdown_line_opens_the_next_boot() -> None:
    # The streamer died mid-entry at shutdown; the next boot's banner follows on that line.
    torn = _entry("a", "stopping")[:60]
    raw = _entry("a", "reboot") + torn + _entry("b", "Linux version 6") + _entry("b", "two")
    chunks = split_by_boot_id(raw)
    assert len(chunks) == 2
    assert render_journal(chunks[0]).count("\n") == 1 and "reboot" in render_journal(chunks[0])
    second = render_journal(chunks[1]).splitlines()
    assert len(second) == 2 and "Linux version 6" in second[0]
    assert b"".join(chunks) == raw
