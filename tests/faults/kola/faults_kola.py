"""Kola tests, each injecting one fault into a booted machine (run by ../test_boot.py).

Not collected by the project's own pytest run (the name does not start with test_).
"""

import os
import signal
import time
import tracemalloc

from kolapy import kola
from kolapy.transport.qmp import QmpConnection

# ---- on one shared machine: faults that leave it usable -------------------------------------


@kola(name="fault.cmd-timeout", exclusive=False)
def test_cmd_timeout(machine):
    machine.run("sleep 600", timeout=5)


@kola(name="fault.ssh-cut", exclusive=False)
def test_ssh_cut(machine):
    # kill the sshd processes serving the sessions, this command's own included
    machine.succeed("sudo pkill -KILL -f '^sshd: [^ ]+@' ; sleep 30", timeout=60)


@kola(name="fault.console-flood", exclusive=False)
def test_console_flood(machine):
    machine.succeed("sudo systemd-run --unit=flood timeout 20 sh -c "
                    "'while :; do echo FLOOD-FLOOD-FLOOD-FLOOD-FLOOD-FLOOD > /dev/ttyS0; done'")
    worst = 0.0
    for _ in range(8):
        start = time.monotonic()
        machine.succeed("true")
        worst = max(worst, time.monotonic() - start)
        time.sleep(1)
    assert worst < machine.scaled(10), f"slowest command during the flood: {worst:.1f} s"
    machine.wait_until_succeeds("! systemctl is-active flood", timeout=60)


@kola(name="fault.huge-output", exclusive=False)
def test_huge_output(machine):
    # 16 MiB streamed to a file, then 8 MiB past a 1 MiB cap spooled: the worker's
    # Python allocations stay below 8 MiB (tracemalloc peak); holding either output
    # whole would take its size twice over (bytes, then the decoded text).
    big = "head -c {} /dev/zero | tr '\\0' x"
    dump = machine.artifact_dir / "huge-output.txt"
    dump.parent.mkdir(parents=True, exist_ok=True)
    hwm_before = _vm_hwm()
    tracemalloc.start()
    try:
        r = machine.run(big.format(16 << 20), timeout=300, stdout=dump)
        streamed_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        cap, machine.output_cap = machine.output_cap, 1 << 20
        try:
            spooled = machine.run(big.format(8 << 20), timeout=300)
        finally:
            machine.output_cap = cap
        spooled_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (r.rc, r.stdout, r.stdout_file) == (0, "", dump)
    assert dump.stat().st_size == 16 << 20
    dump.unlink()  # 16 MiB of x is no evidence worth keeping
    (machine.artifact_dir / "huge-output-peaks.txt").write_text(
        f"streamed 16 MiB: peak {streamed_peak} B\nspooled 8 MiB: peak {spooled_peak} B\n"
        f"worker VmHWM {hwm_before} -> {_vm_hwm()} kB\n")
    assert streamed_peak < 8 << 20, f"streaming 16 MiB held {streamed_peak >> 20} MiB"
    assert spooled.rc == 0 and spooled.stdout_file is not None
    assert spooled.stdout_file.parent == machine.artifact_dir / "outputs"
    assert spooled.stdout_file.stat().st_size == 8 << 20
    assert spooled.stdout.startswith("x" * (1 << 20) + "\n[kolapy: ")
    assert f"all of it is in {spooled.stdout_file}]" in spooled.stdout
    assert spooled_peak < 8 << 20, f"spooling 8 MiB held {spooled_peak >> 20} MiB"


def _vm_hwm() -> int:
    """The worker's peak resident memory so far (kB), from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


# ---- one restored clone each: faults that ruin the machine ----------------------------------


@kola(name="fault.qemu-killed")
def test_qemu_killed(machine):
    machine.succeed("true")
    os.kill(machine.pid, signal.SIGKILL)
    machine.succeed("echo after-the-kill")


@kola(name="fault.panic")
def test_panic(machine):
    machine.run("sudo sh -c 'echo 1 > /proc/sys/kernel/sysrq; (sleep 1; echo c > "
                "/proc/sysrq-trigger) >/dev/null 2>&1 &'", timeout=10)
    machine.wait_for_console("Kernel panic - not syncing", timeout=30)
    machine.succeed("echo after-the-panic", timeout=4)


@kola(name="fault.guest-frozen")
def test_guest_frozen(machine):
    with QmpConnection(machine.paths.qmp_socket) as qmp:
        qmp.connect(2.0)
        qmp.command("stop")
    machine.succeed("echo after-the-freeze", timeout=4)


@kola(name="fault.reboot-behind")
def test_reboot_behind(machine):
    machine.run("sudo systemctl reboot", timeout=10)
    time.sleep(5)
    machine.succeed("echo after-the-reboot", timeout=4)


@kola(name="fault.clock")
def test_clock(machine):
    machine.succeed("sudo date -s @1000000000")  # 2001
    assert machine.succeed("date +%Y").strip() == "2001"
    machine.succeed("logger FAULT-CLOCK-2001")
    machine.succeed("sudo date -s @4102444800")  # 2100
    assert machine.succeed("date +%Y").strip() == "2100"
    machine.succeed("logger FAULT-CLOCK-2100")
