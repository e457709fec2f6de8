"""SshHint: SSH is tried once the journal or console says sshd is up, else paced blind tries."""

from __future__ import annotations

import json
from pathlib import Path

from kolapy.machine.bootwatch import SshHint
from kolapy.transport.console import ConsoleLog
from kolapy.transport.journal import JournalLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _entry(message: str) -> bytes:
    return (json.dumps({"MESSAGE": message, "SYSLOG_IDENTIFIER": "x"}) + "\n").encode()


def _hint(tmp_path: Path, clock: Clock, journal_since: int = 0,
          console_since: int = 0) -> tuple[SshHint, Path, Path]:
    jpath, cpath = tmp_path / "journal.json", tmp_path / "console.txt"
    hint = SshHint(JournalLog(jpath), ConsoleLog(cpath), journal_since=journal_since,
                   console_since=console_since, blind_after=40.0, blind_every=20.0,
                   clock=clock)
    return hint, jpath, cpath


def test_waits_for_sshd_in_the_journal(tmp_path):
    clock = Clock()
    hint, jpath, _ = _hint(tmp_path, clock)
    assert not hint.ready()  # no files at all yet
    jpath.write_bytes(_entry("Started systemd-networkd.service") * 50)
    assert not hint.ready()
    with jpath.open("ab") as f:
        f.write(_entry("Server listening on 0.0.0.0 port 22."))
    assert hint.ready()
    assert hint.seen
    assert hint.ready()  # stays ready


def test_message_torn_across_two_polls_is_found(tmp_path):
    clock = Clock()
    hint, jpath, _ = _hint(tmp_path, clock)
    line = _entry("Server listening on :: port 22.")
    jpath.write_bytes(_entry("filler " * 100) + line[:20])
    assert not hint.ready()
    with jpath.open("ab") as f:
        f.write(line[20:])
    assert hint.ready()


def test_console_login_prompt_counts(tmp_path):
    hint, _, cpath = _hint(tmp_path, Clock())
    cpath.write_text("Welcome to Debian\n")
    assert not hint.ready()
    cpath.write_text("Welcome to Debian\n\nlocalhost login: ")
    assert hint.ready()


def test_signs_before_this_boot_are_ignored(tmp_path):
    jpath, cpath = tmp_path / "journal.json", tmp_path / "console.txt"
    jpath.write_bytes(_entry("Server listening on 0.0.0.0 port 22."))
    cpath.write_text("localhost login: ")
    hint, _, _ = _hint(tmp_path, Clock(), journal_since=jpath.stat().st_size,
                       console_since=cpath.stat().st_size)
    assert not hint.ready()


def test_blind_tries_are_paced_without_any_sign(tmp_path):
    clock = Clock()
    hint, _, _ = _hint(tmp_path, clock)
    clock.now += 39.0
    assert not hint.ready()
    clock.now += 1.0
    assert hint.ready()  # first blind try
    assert not hint.seen
    assert not hint.ready()  # not again right away
    clock.now += 19.0
    assert not hint.ready()
    clock.now += 1.0
    assert hint.ready()


def test_no_blind_tries_while_the_journal_streams_until_much_later(tmp_path):
    clock = Clock()
    hint, jpath, _ = _hint(tmp_path, clock)
    jpath.write_bytes(_entry("Started systemd-udevd.service"))
    clock.now += 40.0
    assert not hint.ready()  # the stream is alive: it will tell when sshd is up
    clock.now += 119.0
    assert not hint.ready()
    clock.now += 1.0
    assert hint.ready()  # 4 x blind_after: try anyway (an sshd that logs differently)
    assert not hint.seen
