"""A command's output is bounded in memory: capped and spooled, or streamed to a file (fault 21).

The SSH pump (`kolapy.transport.ssh._pump`) is fed by a fake channel that prints
256 MiB; tracemalloc measures what the host holds.  ~3 s.
"""

from __future__ import annotations

import io
import time
import tracemalloc
from pathlib import Path

from kolapy.machine.base import Machine
from kolapy.transport.output import OutputSink, OutputSpool
from kolapy.transport.ssh import _collect, _pump

MiB = 1024 * 1024
CHUNK = b"x" * 65536


class _Printer:
    """A paramiko channel whose command prints ``total`` bytes of stdout, then exits 0."""

    def __init__(self, total: int, stderr: bytes = b"") -> None:
        self.left = total
        self.stderr = stderr
        self.eof_received = False

    def recv_ready(self) -> bool:
        return self.left > 0

    def recv(self, n: int) -> bytes:
        data = CHUNK if self.left >= len(CHUNK) else CHUNK[: self.left]
        self.left -= len(data)
        self.eof_received = self.left == 0 and not self.stderr
        return data

    def recv_stderr_ready(self) -> bool:
        return bool(self.stderr)

    def recv_stderr(self, n: int) -> bytes:
        data, self.stderr = self.stderr, b""
        self.eof_received = self.left == 0
        return data

    def exit_status_ready(self) -> bool:
        return self.left == 0 and not self.stderr

    def recv_exit_status(self) -> int:
        return 0


def _peak_while(fn) -> int:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _pump_into(chan: _Printer, out: OutputSink, err: OutputSink) -> int:
    return _pump(chan, "yes", time.monotonic() + 60, 60, out, err)  # type: ignore[arg-type]


def test_256_mib_past_the_cap_is_spooled_and_memory_stays_bounded(tmp_path: Path) -> None:
    spool = OutputSpool(tmp_path / "outputs", cap=1 * MiB)
    out, err = spool.sinks()
    rc: list[int] = []
    peak = _peak_while(lambda: rc.append(_pump_into(_Printer(256 * MiB, b"warn\n"), out, err)))
    out.close()
    err.close()
    assert rc == [0]
    assert peak < 8 * MiB, f"host held {peak / MiB:.0f} MiB for a 256 MiB output"
    assert out.path == tmp_path / "outputs" / "001.stdout"
    assert out.path.stat().st_size == 256 * MiB == out.size
    text = out.text("'yes'")
    assert text.startswith("x" * MiB)
    assert text.endswith(f"'yes' stdout was {256 * MiB} bytes, over the {MiB} kept in memory; "
                         f"the first {MiB} are above, all of it is in {out.path}]\n")
    # stderr stayed under the cap: in memory, no file
    assert (err.text(), err.path) == ("warn\n", None)
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["001.stdout"]


def test_held_whole_without_a_spool_is_what_the_measure_catches() -> None:
    # The control: the old behaviour (no spool) holds everything; the bound above would fail.
    out = OutputSink()
    peak = _peak_while(lambda: _pump_into(_Printer(32 * MiB), out, OutputSink()))
    assert peak >= 32 * MiB
    assert out.size == len(out.bytes()) == 32 * MiB


def test_stdout_to_a_file_keeps_nothing_in_memory(tmp_path: Path) -> None:
    target = tmp_path / "dump.bin"
    with target.open("wb") as f:
        out = OutputSink(file=f)
        peak = _peak_while(lambda: _pump_into(_Printer(256 * MiB), out, OutputSink()))
    assert peak < 8 * MiB, f"host held {peak / MiB:.0f} MiB"
    assert target.stat().st_size == 256 * MiB
    assert (out.text(), out.path) == ("", target)


def test_under_the_cap_nothing_changes(tmp_path: Path) -> None:
    spool = OutputSpool(tmp_path / "outputs", cap=MiB)
    out, err = spool.sinks()
    _pump_into(_Printer(MiB), out, err)
    assert out.text() == "x" * MiB and out.path is None
    assert not (tmp_path / "outputs").exists()
    # the old entry point still returns bytes, held whole
    assert _collect(_Printer(3), "x", time.monotonic() + 5, 5)[1:] == (b"xxx", b"")  # type: ignore[arg-type]


def test_machine_spools_under_its_artifact_dir_and_streams_to_a_path(tmp_path: Path) -> None:
    from tests.unit.test_machine_base import LocalMachine

    m: Machine = LocalMachine()
    assert m.output_spool() is None  # no artifact dir: held whole, as before
    m.artifact_dir = tmp_path / "art"
    spool = m.output_spool()
    assert spool is not None and spool.directory == tmp_path / "art" / "outputs"
    m.output_cap = 10
    assert m.output_spool() is spool and spool.cap == 10
    # stdout= a path: the whole stdout lands there, the result names it
    r = m.run("printf 'a%.0s' $(seq 100); echo err >&2", stdout=tmp_path / "o.txt")
    assert (r.stdout, r.stderr, r.stdout_file) == ("", "err\n", tmp_path / "o.txt")
    assert (tmp_path / "o.txt").read_text() == "a" * 100
    # stdout= a binary file object
    buf = io.BytesIO()
    assert m.succeed("echo hi", stdout=buf) == "" and buf.getvalue() == b"hi\n"
