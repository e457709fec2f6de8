"""The container workflow, written once for every engine.

``run -d`` (a busybox ``httpd`` on a published port, fetched from the guest),
``ps``, ``exec``, ``cp`` both ways, ``logs``, ``inspect``, ``export``/``import``,
``save``/``load``, ``stop``, ``rm``, ``rmi`` and, for engines with a daemon, a
restart policy across a daemon restart.  Engine differences come from
:mod:`kolapy.containers.engines` only.
"""

from __future__ import annotations

import secrets
import shlex

from kolapy.containers.engines import Engine
from kolapy.containers.guest import EngineOnGuest, http_get
from kolapy.machine.base import Machine

#: Host port each engine's workflow publishes (distinct: engines may share a machine).
WORKFLOW_PORTS = {"podman": 18080, "docker": 18081, "isula": 18082}


def _names(engine: Engine) -> dict[str, str]:
    base = f"kolapy-wf-{engine.name}"
    return {"web": f"{base}-web", "always": f"{base}-always", "never": f"{base}-never",
            "imported": f"localhost/kolapy/{engine.name}-imported:1", "dir": f"/var/tmp/{base}"}


def run_workflow(machine: Machine, engine: Engine, *, load: bool = True) -> None:
    """The whole workflow on ``machine`` with ``engine``; raises on the first failure.

    ``load=False`` assumes the test image is already in the engine's store (a test
    that wants to prove what happens when it is not).
    """
    eg = EngineOnGuest(machine, engine)
    image = eg.load_image() if load else eg.image
    n = _names(engine)
    port = WORKFLOW_PORTS[engine.name]
    token = f"kolapy-{secrets.token_hex(8)}"
    work = n["dir"]
    machine.succeed(f"sudo -n rm -rf {work} && sudo -n mkdir -p {work} "
                    f"&& echo {token} | sudo -n tee {work}/in.txt >/dev/null", timeout=30)
    try:
        _serve_and_inspect(machine, eg, image, n, port, token)
        _export_import_save_load(machine, eg, n, token)
        _stop_rm_rmi(eg, n)
        if engine.restart_policy:
            restart_policy_across_daemon_restart(machine, eg, image, n)
    finally:
        eg.remove_containers([n["web"], n["always"], n["never"]])
        eg.run("rmi", "-f", n["imported"])
        machine.run(f"sudo -n rm -rf {work}", timeout=60)


def _serve_and_inspect(machine: Machine, eg: EngineOnGuest, image: str, n: dict[str, str],
                       port: int, token: str) -> None:
    web = n["web"]
    eg.ok("run", "-d", "--name", web, "-p", f"{port}:80", image,
          "sh", "-c", "echo kolapy-web-started; exec httpd -f -v -p 80 -h /www",
          why="run -d with a published port")
    ps = eg.ok("ps")
    assert web in ps, f"`{eg.engine.binary} ps` does not list {web}:\n{ps}"

    eg.ok("exec", web, "sh", "-c", "echo from-exec > /www/exec.txt", why="exec")
    eg.ok("cp", f"{n['dir']}/in.txt", f"{web}:/www/page.txt", why="cp host -> container")

    url = f"http://127.0.0.1:{port}/page.txt"
    body = machine.wait_until_succeeds(http_get(url), timeout=60).strip()
    assert body == token, f"GET {url} returned {body!r}, expected {token!r}"

    out = f"{n['dir']}/out.txt"
    eg.ok("cp", f"{web}:/www/exec.txt", out, why="cp container -> host")
    copied = machine.succeed(["sudo", "-n", "cat", out], timeout=30).strip()
    assert copied == "from-exec", f"copied out {copied!r}, expected 'from-exec'"

    logs_cmd = " ".join(shlex.quote(a) for a in eg.argv("logs", web))
    combined = eg.shell_ok(f"{logs_cmd} 2>&1", why="logs")
    assert "kolapy-web-started" in combined, f"`logs {web}` lacks the start line:\n{combined}"

    running = eg.inspect("{{.State.Running}}", web)
    assert running == "true", f"inspect says {web} State.Running={running!r}"


def _export_import_save_load(machine: Machine, eg: EngineOnGuest, n: dict[str, str],
                             token: str) -> None:
    exported, saved, imported = f"{n['dir']}/export.tar", f"{n['dir']}/save.tar", n["imported"]
    eg.ok("export", "-o", exported, n["web"], why="export")
    eg.ok("import", exported, imported, why="import")
    inside = eg.ok("run", "--rm", imported, "cat", "/www/page.txt", why="run the imported image")
    assert inside.strip() == token, f"imported image holds {inside.strip()!r}, expected {token!r}"

    eg.ok("save", "-o", saved, imported, why="save")
    size = int(machine.succeed(["sudo", "-n", "stat", "-c", "%s", saved], timeout=30))
    assert size > 0, f"{saved} is empty"
    eg.ok("rmi", imported, why="rmi before load")
    assert not eg.has_image(imported), f"{imported} still present after rmi"
    eg.ok("load", "-i", saved, why="load the saved image")
    assert eg.has_image(imported), f"{imported} missing after `load -i {saved}`"


def _stop_rm_rmi(eg: EngineOnGuest, n: dict[str, str]) -> None:
    web = n["web"]
    eg.ok("stop", web, why="stop")
    running = eg.inspect("{{.State.Running}}", web)
    assert running == "false", f"{web} still running after stop (State.Running={running!r})"
    eg.ok("rm", web, why="rm")
    listed = eg.ok("ps", "-a")
    assert web not in listed, f"`ps -a` still lists {web} after rm:\n{listed}"
    eg.ok("rmi", n["imported"], why="rmi")
    assert not eg.has_image(n["imported"]), f"{n['imported']} still present after rmi"


def _daemon_pid(machine: Machine, unit: str) -> str:
    return machine.succeed(["systemctl", "show", "-p", "MainPID", "--value", unit],
                           timeout=30).strip()


def restart_policy_across_daemon_restart(machine: Machine, eg: EngineOnGuest, image: str,
                                         n: dict[str, str]) -> None:
    """A ``--restart=always`` container runs again after the daemon restarts.

    Engines that keep containers across a daemon restart (live restore) leave both
    containers running; otherwise the ``always`` one must have started anew and the
    ``--restart=no`` one must have stopped.  Either way the daemon's PID must change.
    """
    unit = eg.engine.daemon_unit
    assert unit is not None
    eg.ok("run", "-d", "--name", n["always"], "--restart=always", image, "sleep", "100000",
          why="run --restart=always")
    eg.ok("run", "-d", "--name", n["never"], "--restart=no", image, "sleep", "100000",
          why="run --restart=no")
    before = eg.inspect("{{.State.StartedAt}}", n["always"])
    pid_before = _daemon_pid(machine, unit)
    eg.shell_ok(f"sudo -n systemctl restart {shlex.quote(unit)}", timeout=300,
                why=f"restarting {unit}")
    pid_after = _daemon_pid(machine, unit)
    assert pid_after not in ("", "0", pid_before), (
        f"{unit} MainPID {pid_before} -> {pid_after}: the daemon did not restart")
    check = " ".join(shlex.quote(a) for a in eg.argv("inspect", "-f", "{{.State.Running}}",
                                                     n["always"]))
    machine.wait_until_succeeds(f'test "$({check})" = true', timeout=180)
    never = eg.inspect("{{.State.Running}}", n["never"])
    after = eg.inspect("{{.State.StartedAt}}", n["always"])
    if never == "false":
        assert after != before, (
            f"{n['always']} kept StartedAt {before} although the daemon stopped containers")
    else:
        assert never == "true" and after == before, (
            f"live restore: {n['never']} Running={never!r}, {n['always']} StartedAt "
            f"{before} -> {after}")
