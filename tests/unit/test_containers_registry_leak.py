"""The ``host_registry`` fixture leaves no docker-registry behind: pass, failure, Ctrl-C.

Drives the fixture in a child pytest (no VM: the registry is started for zero
machines), records the registry's pid, and checks the process is gone after the
child ends.  Needs Debian's ``docker-registry`` on the host (setup.sh installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("docker-registry") is None,
    reason="host has no docker-registry (apt-get install docker-registry)",
)

PROBE = '''
import os, time
from pathlib import Path

def test_probe(host_registry):
    reg = host_registry()
    assert reg.service.catalog() == []
    Path(os.environ["KOLAPY_PROBE_PIDFILE"]).write_text(str(reg.service.pid))
    mode = os.environ["KOLAPY_PROBE_MODE"]
    if mode == "fail":
        raise AssertionError("planted failure")
    if mode == "hang":
        time.sleep(600)
'''


def _is_registry(pid: int) -> bool:
    try:
        return b"docker-registry" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _default_sigint() -> None:
    # A background job of a non-interactive shell starts with SIGINT ignored (FACTS).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], Path]:
    (tmp_path / "test_probe.py").write_text(PROBE)
    pidfile = tmp_path / "registry.pid"
    env = {**os.environ, "KOLAPY_PROBE_PIDFILE": str(pidfile), "KOLAPY_PROBE_MODE": mode}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         str(tmp_path / "test_probe.py")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=_default_sigint,
    )
    return proc, pidfile


def _wait_gone(pid: int, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _is_registry(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize(("mode", "rc"), [("pass", 0), ("fail", 1)])
def test_no_registry_left_after_pass_or_failure(tmp_path: Path, mode: str, rc: int) -> None:
    proc, pidfile = _start(tmp_path, mode)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == rc, out
    pid = int(pidfile.read_text())
    assert _wait_gone(pid), f"docker-registry {pid} still running after a {mode}ed test"


def test_no_registry_left_after_ctrl_c(tmp_path: Path) -> None:
    proc, pidfile = _start(tmp_path, "hang")
    try:
        deadline = time.monotonic() + 60
        while not pidfile.exists() or not pidfile.read_text():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the probe never started its registry"
            time.sleep(0.1)
        pid = int(pidfile.read_text())
        assert _is_registry(pid), "the registry was not running during the test"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, out  # pytest's "interrupted"
    assert "KeyboardInterrupt" in out, out
    assert _wait_gone(pid), f"docker-registry {pid} still running after Ctrl-C"
