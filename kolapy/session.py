"""KolaSession: the run-wide state behind the pytest plugin.

The plugin's hooks only forward to this object; everything that decides
something lives here or in the library modules it calls.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kolapy.config import RunConfig
from kolapy.errors import BadInputError, InfraError
from kolapy.pool import MachinePool
from kolapy.report.bootlog import BootLogs
from kolapy.scheduling import share_key, spec_for

log = logging.getLogger("kolapy")

OUTDIR_KEY = "kolapy_output_dir"


@dataclass
class ItemPlan:
    """What the plugin decided for one collected test."""

    meta: Any
    full_name: str
    parent: str
    key: str
    spec: Any
    warn_only: bool = False
    denied: str | None = None


PLAN = pytest.StashKey[ItemPlan]()


@dataclass
class KolaSession:
    """Run-wide state of one pytest process (controller or worker)."""

    cfg: RunConfig
    _output_dir: Path | None
    is_worker: bool
    worker_id: str = "gw"
    plans: list[ItemPlan] = field(default_factory=list)
    collector: Any = None
    deselected_reasons: list[tuple[str, str]] = field(default_factory=list)
    _pool: MachinePool | None = None
    boot_logs: BootLogs = field(default_factory=BootLogs)
    """Attaches each machine's boot to the first testcase that used it."""
    _image: Path | None = None
    started: float = field(default_factory=time.time)
    """When this process's run began (epoch seconds): the report's time zero."""

    # -- set-up --------------------------------------------------------------
    @classmethod
    def from_pytest_config(cls, config: pytest.Config) -> KolaSession:
        try:
            cfg = RunConfig.from_options(lambda dest, default: config.getoption(dest, default))
        except ValueError as exc:
            raise BadInputError(str(exc)) from None
        workerinput = getattr(config, "workerinput", None)
        if workerinput is not None:
            out = Path(workerinput[OUTDIR_KEY])
            return cls(cfg, out, True, workerinput.get("workerid", "gw"))
        return cls(cfg, cfg.output_dir, False, "gw")

    @property
    def output_dir(self) -> Path:
        """The kola output dir; the default is chosen on first use (one per run)."""
        if self._output_dir is None:
            try:
                from kolapy.report.outdir import default_output_dir
            except ImportError:  # TODO(lead): remove once kolapy.report lands
                return Path("_kola_temp").absolute()
            self._output_dir = default_output_dir(platform=self.cfg.platform).absolute()
        return self._output_dir

    def preflight(self) -> None:
        """Cheap checks of user input before anything boots (exit 2 on bad input)."""
        if self.cfg.platform == "libvirt":  # a daemon or host that cannot be reached
            from kolapy.machine.libvirt_hosts import check_uris, uris_of

            check_uris(uris_of(self.cfg), self.cfg.libvirt_network)
        if self.cfg.image is not None:
            check_host_and_image(self.cfg, self.cfg.image)
        if self.cfg.denylist is not None:
            from kolapy.denylist import load_denylist

            load_denylist(self.cfg.denylist)

    @property
    def pool(self) -> MachinePool:
        if self._pool is None:
            self._pool = MachinePool(self.cfg, self.output_dir, worker=self.worker_id)
        return self._pool

    def image(self) -> Path:
        """The image under test; the reference image is built on first need."""
        if self._image is None:
            if self.cfg.image is not None:
                self._image = self.cfg.image
            else:
                from kolapy.refimage import ensure_image

                self._image = ensure_image(self.cfg.arch)
        return self._image

    # -- collection ----------------------------------------------------------
    def plan_items(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """Select kola tests, mark denied ones, group shared machines."""
        if not any(item.get_closest_marker("kola") for item in items):
            return  # not a kola run (e.g. kolapy's own unit tests)
        from kolapy.denylist import run_denylist
        from kolapy.meta import full_name, meta_from_item
        from kolapy.selection import SelectionContext, select

        metas: dict[str, Any] = {}
        for item in items:
            meta = meta_from_item(item)
            if meta is not None:
                metas[item.nodeid] = meta
        if not metas:
            return
        ctx = SelectionContext(
            arch=str(self.cfg.arch),
            platform=self.cfg.platform,
            distro=self.cfg.distro,
            firmware=str(self.cfg.firmware),
            tags=self.cfg.tags,
        )
        denylist = run_denylist(self.cfg.denylist, self.cfg.denylist_tests)
        sel = select(list(metas.values()), self.cfg.patterns, ctx, denylist=denylist)
        chosen = {id(m) for m in sel.selected}
        denied = {id(m): entry for m, entry in sel.denied}
        warn = {id(m) for m, _ in sel.warn_only}
        reasons = {id(m): r for m, r in sel.deselected}

        keep: list[pytest.Item] = []
        drop: list[pytest.Item] = []
        image = self.cfg.image or Path("<reference-image>")
        for item in items:
            meta = metas.get(item.nodeid)
            if meta is None:
                keep.append(item)
                continue
            if id(meta) not in chosen and id(meta) not in denied:
                drop.append(item)
                self.deselected_reasons.append((full_name(meta), reasons.get(id(meta), "")))
                continue
            spec = spec_for(meta, self.cfg, image)
            _validate_config(meta, spec)
            parent = meta.name
            key = share_key(parent, spec, exclusive=meta.exclusive, conflicts=bool(meta.conflicts))
            plan = ItemPlan(meta, full_name(meta), parent, key, spec, warn_only=id(meta) in warn)
            if id(meta) in denied:
                entry = denied[id(meta)]
                plan.denied = f"denylisted: {entry.tracker or entry.pattern}"
                item.add_marker(pytest.mark.skip(reason=plan.denied))
            # by item, not nodeid: xdist renames items of a group (`id@group`)
            item.stash[PLAN] = plan
            self.plans.append(plan)
            item.add_marker(pytest.mark.xdist_group(name=key))
            if config.pluginmanager.hasplugin("timeout") and not item.get_closest_marker("timeout"):
                # kola's per-test timeout, scaled like every wait under emulation
                item.add_marker(pytest.mark.timeout(meta.timeout * self.timeout_scale()))
            keep.append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
        users = Counter(p.key for p in self.plans if p.denied is None)
        self.pool.users.update(users)
        from kolapy.scheduling import restore_digests

        workerinput = getattr(config, "workerinput", None) or {}
        self.pool.restore_digests = restore_digests(
            self.plans, workers=int(workerinput.get("workercount", 1)))

    def timeout_scale(self) -> float:
        """How much slower than KVM this run's machines are (TCG: several times)."""
        from kolapy.machine.accel import resolve_accel, timeout_scale

        return timeout_scale(resolve_accel(self.cfg.accel, self.cfg.arch))

    # -- machines --------------------------------------------------------------
    def machine_for(self, item: pytest.Item) -> Any:
        """The (possibly shared) machine of a planned test; a cluster's first member."""
        return self.cluster_for(item, fixture="machine").machines[0]

    def cluster_for(self, item: pytest.Item, fixture: str = "cluster") -> Any:
        """The test's :class:`~kolapy.machine.cluster.Cluster` (``cluster_size`` machines)."""
        from kolapy.machine.cluster import Cluster

        plan = item.stash.get(PLAN, None)
        if plan is None:
            raise BadInputError(
                f"{item.nodeid}: the '{fixture}' fixture needs a kola test (add @kola(name=...))"
            )
        size = int(getattr(plan.meta, "cluster_size", 1) or 1)
        spec = _with_image(plan.spec, self.image())
        got = self.pool.acquire(plan.key, spec, plan.parent, size)
        return got if size > 1 else Cluster([got])

    def done_with(self, item: pytest.Item, failed: bool) -> None:
        plan = item.stash.get(PLAN, None)
        if plan is None or plan.denied is not None:
            return
        if failed and self.cfg.keep_failed:
            kept = self.pool.keep(plan.key)
            for machine in getattr(kept, "machines", [kept] if kept is not None else []):
                print(
                    f"\nkolapy: kept {machine.name} for {plan.full_name}: {machine.ssh_command()}"
                )
        self.pool.release(plan.key)

    def annotate(
        self, item: pytest.Item, call: Any, report: Any, machines: list[tuple[Any, Any]]
    ) -> None:
        """Put the kola name, log slices and badness verdicts into the report."""
        plan = item.stash.get(PLAN, None)
        if plan is None:
            return
        from kolapy.report.collector import (
            KEY_CONSOLE,
            KEY_DENIED,
            KEY_ERROR_KIND,
            KEY_JOURNAL,
            KEY_MACHINES,
            KEY_MEMBERS,
            KEY_NAME,
            KEY_PARENT,
            KEY_RESTORED,
            KEY_WARN,
        )

        props = report.user_properties
        props.append((KEY_NAME, plan.full_name))
        props.append((KEY_PARENT, plan.parent))
        if plan.denied:
            props.append((KEY_DENIED, plan.denied))
        if call.excinfo is not None and is_infra(call.excinfo.value):
            props.append((KEY_ERROR_KIND, "infra"))
        if call.when == "setup" and call.excinfo is not None:  # a boot that failed: its logs
            from kolapy.report.bootlog import failed_boot

            boot = failed_boot(call.excinfo.value)
            if boot is not None:
                props += [(KEY_MACHINES, [boot[0]]), (KEY_CONSOLE, boot[1]),
                          (KEY_JOURNAL, boot[2])]
        if call.when == "setup" and call.excinfo is None and machines:  # a stopped run: no call
            props.append((KEY_MACHINES, [m.name for m, _ in machines]))
        if call.when != "call" or not machines:
            return
        consoles, journals, warnings = [], [], []
        for m, mark in machines:
            try:
                _sync_journal(m, mark, f"kolapy: end of {plan.full_name}")
                console, journal = self.boot_logs.slice(m, mark)  # + its boot, on first use
            except Exception as exc:  # a dead machine still gets a report
                console, journal = f"<console unavailable: {exc}>", ""
            consoles.append(console)
            journals.append(journal)
        props.append((KEY_MACHINES, [m.name for m, _ in machines]))
        restored = {m.name: m.restored_from for m, _ in machines if getattr(m, "restored", False)}
        if restored:
            props.append((KEY_RESTORED, restored))
        members = {m.name: m.cluster_member.to_report() for m, _ in machines
                   if getattr(m, "cluster_member", None) is not None}
        if members:
            props.append((KEY_MEMBERS, members))
        props.append((KEY_CONSOLE, "\n".join(consoles)))
        props.append((KEY_JOURNAL, "\n".join(journals)))
        # kola's skip-base-checks tag: no console/journal badness checks for this test
        if not self.cfg.skip_console_checks and "skip-base-checks" not in getattr(
            plan.meta, "tags", ()):
            from kolapy.checks import check_text

            skip_em = "no_emergency_shell_check" in getattr(plan.meta, "flags", ())
            hits = [
                b for text in consoles + journals for b in check_text(text, skip_emergency=skip_em)
            ]
            fails = [b for b in hits if b.severity == "fail"]
            warnings += [f"{b.pattern_name}: {b.line}" for b in hits if b.severity != "fail"]
            if fails and report.passed:
                report.outcome = "failed"
                report.longrepr = "console/journal badness:\n" + "\n".join(
                    f"  {b.pattern_name}: {b.line}" for b in fails
                )
        if report.failed and plan.warn_only:
            warnings.append("denylisted with warn: failure reported as WARN")
        if warnings:
            props.append((KEY_WARN, warnings))
        from kolapy.report.events import emit_test

        emit_test(self.output_dir, plan.full_name, [m.name for m, _ in machines],
                  call.start, call.stop, report.outcome, worker=self.worker_id)

    def boot_fresh(self, item: pytest.Item, overrides: dict[str, Any],
                   on_start: Any = None) -> Any:
        from dataclasses import replace

        from kolapy.machine.spec import MachineSpec

        plan = item.stash.get(PLAN, None)
        base = (
            plan.spec
            if plan is not None
            else MachineSpec(
                image=self.image(),
                arch=self.cfg.arch,
                firmware=self.cfg.firmware,
                memory_mib=self.cfg.memory_mib,
                distro=self.cfg.distro,
            )
        )
        # a cluster test's fresh machine is a single machine: the test's config only
        spec = replace(base, image=self.image(), member_ignition=(), **overrides)
        name = plan.parent if plan is not None else item.name
        return self.pool.boot(spec, name, on_start=on_start)

    def record(self, report: Any) -> None:
        """Controller: feed one (possibly remote) test report to the result collector."""
        if not any(k == "kola_name" for k, _ in report.user_properties):
            return
        if self.collector is None:
            from kolapy.report.collector import ResultCollector

            self.collector = ResultCollector()
        self.collector.add(report)

    def finish(self, session: pytest.Session, exitstatus: int) -> None:
        """Controller: write reports and the summary; everyone: wait on kept machines."""
        if self.is_worker:
            return
        records = self.collector.records() if self.collector is not None else []
        if not records:
            self._finish_interrupted(session, exitstatus)
            return
        from kolapy.report import write_all
        from kolapy.report.outdir import make_output_dir

        make_output_dir(self.output_dir, self.cfg.platform)
        write_all(self.output_dir, records, self.properties(session, exitstatus))
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            from kolapy.report.summary import render_summary

            render_summary(records, tr)
            tr.write_line(f"kolapy: reports in {self.output_dir / 'reports'}")

    def _finish_interrupted(self, session: pytest.Session, exitstatus: int) -> None:
        """A run cut before any test finished still gets its page (the machines it booted)."""
        from kolapy.report.events import events_path

        if exitstatus != pytest.ExitCode.INTERRUPTED or not self.plans:
            return
        if not events_path(self.output_dir).exists():
            return
        from kolapy.report.html import write_html
        from kolapy.report.properties import write_properties

        props = self.properties(session, exitstatus)
        write_properties(self.output_dir, props)
        write_html(self.output_dir, [], props)

    def properties(self, session: pytest.Session, exitstatus: int | None = None) -> dict[str, Any]:
        import datetime as dt
        import platform as _platform
        import sys

        from kolapy import __version__
        from kolapy.report.properties import image_checksum

        image = self._image or self.cfg.image or _reference_image(self.cfg.arch)
        return {
            "command_line": sys.argv,
            "image": str(image or "reference"),
            "image_sha256": image_checksum(image) if image is not None else None,
            "arch": str(self.cfg.arch),
            "platform": self.cfg.platform,
            "firmware": str(self.cfg.firmware),
            "accel": str(self.cfg.accel),
            "distro": self.cfg.distro,
            "kolapy_version": __version__,
            "python_version": _platform.python_version(),
            "start_time": dt.datetime.fromtimestamp(self.started, dt.UTC).isoformat(),
            "end_time": dt.datetime.now(dt.UTC).isoformat(),
            "exit_status": None if exitstatus is None else int(exitstatus),
        }

    def close(self) -> None:
        """Stop every machine; with ``--keep-failed``, first wait for Ctrl-C."""
        if self._pool is None:
            return
        try:
            kept = self._pool.kept_machines()
            if kept:
                _wait_for_interrupt(kept)
        finally:
            self._pool.close()


def check_host_and_image(cfg: RunConfig, image: Path) -> None:
    """QEMU, qemu-img, firmware and the image, for this run's arch and firmware."""
    from kolapy.machine.platform import load_platform
    from kolapy.machine.preflight import preflight
    from kolapy.machine.spec import MachineSpec
    from kolapy.scheduling import effective_firmware

    spec = MachineSpec(image=image, arch=cfg.arch, firmware=effective_firmware(cfg))
    preflight(spec, load_platform(cfg.arch))


def _sync_journal(machine: Any, mark: Any, token: str, wait: float = 5.0) -> None:
    """Log ``token`` in the guest and wait until the journal stream delivered it.

    The journal reaches the host asynchronously; without this, a short test's
    last lines would land in the next test's slice.  Best effort: a machine
    that is down (or a fake) simply gets no marker.
    """
    import time

    run = getattr(machine, "run", None)
    if run is None:
        return
    try:
        if run(["logger", "-t", "kolapy", token], timeout=10).failed:
            return
        # Under emulation on a loaded host the stream can lag by more than a few seconds.
        scaled = getattr(machine, "scaled", None)
        end = time.monotonic() + (scaled(wait) if callable(scaled) else wait)
        while time.monotonic() < end:
            if token in machine.logs_since(mark)[1]:
                return
            time.sleep(0.1)
    except Exception:  # the slice is still taken; only its tail may be late
        return


def _validate_config(meta: Any, spec: Any) -> None:
    """A test's invalid Ignition config is bad input: fail before any VM boots.

    A cluster with per-member configs has each member's (the test's config merged
    with the member's own) checked.
    """
    if spec.ignition is None and not spec.member_ignition:
        return
    from kolapy.ignition import validate
    from kolapy.ignition.fwcfg import check_fw_cfg_size
    from kolapy.machine.ignition_config import to_ignition
    from kolapy.machine.platform import IgnitionInjection, load_platform

    try:
        base = to_ignition(spec.ignition)
    except BadInputError as exc:
        raise BadInputError(f"test {meta.full_name} ({meta.nodeid}): {exc}") from None
    owns = {f"member {i}: ": own for i, own in enumerate(spec.member_ignition)} or {"": None}
    fw_cfg = load_platform(spec.arch).ignition_injection == IgnitionInjection.FW_CFG
    for member, own in owns.items():
        try:
            config = base if own is None else base.merge(own)
            validate(config, allow_warnings="allow_config_warnings" in meta.flags)
            if fw_cfg:
                check_fw_cfg_size(config, "its Ignition config")
        except BadInputError as exc:
            raise BadInputError(f"test {meta.full_name} ({meta.nodeid}): {member}{exc}") from None


def _wait_for_interrupt(machines: list[Any]) -> None:
    import sys
    import time

    err = sys.__stderr__ or sys.stderr
    for m in machines:
        print(
            f"kolapy: kept {m.name}\n  ssh:     {m.ssh_command()}\n  console: {m.console_log_path}",
            file=err,
        )
    print("kolapy: press Ctrl-C to stop the kept machines", file=err, flush=True)
    try:
        while any(m.is_running() for m in machines):
            time.sleep(1)
    except KeyboardInterrupt:
        pass


def _reference_image(arch: Any) -> Path | None:
    """The cached reference image (the workers' default), for the report; None if unknown."""
    try:
        from kolapy.refimage import image_path

        return image_path(arch)
    except Exception:  # a report fact, never a reason to fail the run's end
        return None


def _with_image(spec: Any, image: Path) -> Any:
    from dataclasses import replace

    return replace(spec, image=image)


def is_infra(exc: BaseException | None) -> bool:
    return isinstance(exc, InfraError)

