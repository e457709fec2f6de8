"""The kolapy pytest plugin: options, fixtures and hooks (wiring only).

Loaded automatically through the ``pytest11`` entry point.  Everything that
decides something lives in :mod:`kolapy.session` and the library.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kolapy import interrupts
from kolapy.errors import BadInputError
from kolapy.hostsvc.fixtures import host_http, host_registry  # noqa: F401 (fixtures)
from kolapy.options import OPTIONS, PYTEST_ONLY
from kolapy.report.collector import INFRA, KEY_ERROR_KIND, KEY_NAME, KEY_PARENT
from kolapy.report.crashed import KEY_PLAN_NAMES, never_ran_report, plan_names
from kolapy.report.live import OPTION as LIVE_OPTION
from kolapy.report.live import live_view
from kolapy.session import OUTDIR_KEY, PLAN, KolaSession

SESSION = pytest.StashKey[KolaSession]()
MACHINES = pytest.StashKey[list[tuple[Any, Any]]]()
FAILED = pytest.StashKey[bool]()
NAMES_SENT = pytest.StashKey[bool]()
LOADGROUP_KEY = "kolapy_loadgroup"
# The run could not write its reports (disk full, output dir gone): exit 3, one line.
REPORTS_UNWRITTEN = 3


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kolapy", "kolapy (kola for pytest)")
    for flag, kwargs in [*OPTIONS, *PYTEST_ONLY, LIVE_OPTION]:
        group.addoption(flag, **kwargs)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: as many workers as cores, but no more machines than fit in memory."""
    from kolapy.config import DEFAULT_MEMORY_MIB
    from kolapy.machine.memory import auto_workers

    return auto_workers(int(config.getoption("kola_memory", None) or DEFAULT_MEMORY_MIB))


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    # Shared machines need their tests on one worker: group scheduling.
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") in (
        "no",
        "load",
    ):
        config.option.dist = "loadgroup"
        # xdist 3.8 hangs forever when it replaces a crashed worker under loadgroup
        # (pytest-xdist#1323/#1327/#1378): end with the crash reported instead.
        if getattr(config.option, "maxworkerrestart", None) is None:
            config.option.maxworkerrestart = "0"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kola(**metadata): kola test metadata (name, tags, ...)")
    try:
        session = KolaSession.from_pytest_config(config)
        if not session.is_worker:
            session.preflight()
            from kolapy.outputcheck import check_output_dir

            check_output_dir(session.output_dir)
    except BadInputError as exc:
        pytest.exit(f"kolapy: error: {exc}", returncode=BadInputError.exit_code)
    config.stash[SESSION] = session
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and workerinput.get(LOADGROUP_KEY):
        config.option.loadgroup = True  # read by xdist's worker when it names items
    if not session.is_worker:
        config.pluginmanager.register(_ControllerHooks(session), "kolapy-controller")
        live = live_view(config, session)
        if live is not None:
            config.pluginmanager.register(live, "kolapy-live")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(session), "kolapy-xdist")
    # Ctrl-C, SIGTERM and xdist stopping a worker unwind like Ctrl-C, in time.
    interrupts.install(is_worker=session.is_worker)


class _ControllerHooks:
    """Hooks that only the controller runs: it sees every worker's reports."""

    def __init__(self, session: KolaSession) -> None:
        self.session = session
        self._names: dict[str, list[tuple[str, Any]]] = {}  # nodeid -> its kola name props
        self._sched: Any = None
        self.plan_names: dict[str, list[str]] = {}  # nodeid -> [kola name, parent], from workers
        self.crashed: list[str] = []  # ids of the workers that crashed

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for k, v in [p for p in report.user_properties if p[0] == KEY_PLAN_NAMES]:
            self.plan_names.update(v)
            report.user_properties.remove((k, v))
        if report.nodeid not in self._names:
            self._names[report.nodeid] = [
                (k, v) for k, v in report.user_properties if k in (KEY_NAME, KEY_PARENT)
            ]
        self.session.record(report)

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport,
                               sched: Any) -> None:
        # xdist's crash report carries none of kolapy's properties: without them the
        # test kept its passed setup and showed as PASS.  It is an infrastructure error.
        self._sched = sched
        gateway = getattr(getattr(report, "node", None), "gateway", None)
        self.crashed.append(str(getattr(gateway, "id", "?")))
        report.user_properties += [*self._names.get(crashitem, []), (KEY_ERROR_KIND, INFRA)]

    def never_ran(self) -> list[str]:
        """Test ids xdist dropped with a crashed worker (it does not replace it here)."""
        collection = getattr(self._sched, "collection", None) or []
        return [nodeid for nodeid in collection if nodeid not in self._names]


class _XdistHooks:
    def __init__(self, session: KolaSession) -> None:
        self.session = session

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[OUTDIR_KEY] = str(self.session.output_dir)  # one dir for all workers
        # Workers re-parse the original command line, so the loadgroup switch
        # made in pytest_cmdline_main must travel explicitly.
        node.workerinput[LOADGROUP_KEY] = node.config.option.dist == "loadgroup"

    def pytest_xdist_newgateway(self, gateway: Any) -> None:
        # the worker's pid, as xdist's own verbose output reads it; without it an
        # interrupted worker still unwinds, only later (execnet's SIGINT)
        try:
            interrupts.remember_worker(gateway._rinfo().pid)
        except Exception as exc:  # never let this bookkeeping fail a run
            print(f"kolapy: warning: no pid for xdist worker {gateway.id}: {exc}",
                  file=sys.stderr)


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the xdist_group marks
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    try:
        exttest = config.getoption("kola_exttest", None)
        if exttest:  # kola external tests (-E DIR): added before planning, like any test
            from kolapy.external.items import collect_external

            items += collect_external(session, exttest)
        config.stash[SESSION].plan_items(config, items)
    except BadInputError as exc:
        pytest.exit(f"kolapy: error: {exc}", returncode=BadInputError.exit_code)


_SUITES_DIR = Path(__file__).parent / "suites"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    # The built-in suites are named by kola test (basic.py), not test_*.py.
    if (
        file_path.suffix == ".py"
        and file_path.parent == _SUITES_DIR
        and not file_path.name.startswith(("_", "test_"))
    ):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture
def machine(request: pytest.FixtureRequest) -> Any:
    """The test's machine: booted on first use, shared per kola test / machine spec."""
    ks = request.config.stash[SESSION]
    m = ks.machine_for(request.node)
    _remember(request.node, [m])
    return m


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Any:
    """The test's machines (kola ``cluster_size``) on one private network."""
    ks = request.config.stash[SESSION]
    c = ks.cluster_for(request.node)
    _remember(request.node, c.machines)
    return c


def _remember(node: pytest.Item, machines: list[Any]) -> None:
    # Each machine once, marked where this test starts: its log slices come from there.
    seen = node.stash.setdefault(MACHINES, [])
    seen += [(m, m.log_mark()) for m in machines if all(m is not s for s, _ in seen)]


@pytest.fixture
def progress(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Report a step of a long test body: ``progress("kubeadm init done", machine)``.

    The live view shows it as it happens (the run's event log keeps it); it is
    also printed, so the test's captured output has it.
    """
    from kolapy.report.events import emit_step

    ks = request.config.stash[SESSION]
    plan = request.node.stash.get(PLAN, None)
    test = plan.full_name if plan is not None else request.node.name

    def say(text: str, machine: Any = None) -> None:
        print(text, flush=True)
        emit_step(ks.output_dir, test, text, getattr(machine, "name", ""), ks.worker_id)

    return say


@pytest.fixture
def machine_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Boot fresh machines for this test: ``machine_factory(memory_mib=4096, ignition=cfg)``.

    ``on_start=fn`` calls ``fn(machine)`` after QEMU starts and before the guest is
    waited for (e.g. ``lambda m: host_http(d, m)`` for a config fetched at first boot).
    """
    ks = request.config.stash[SESSION]
    booted: list[Any] = []

    def boot(on_start: Callable[[Any], Any] | None = None, **overrides: Any) -> Any:
        m = ks.boot_fresh(request.node, overrides, on_start=on_start)
        booted.append(m)
        request.node.stash.setdefault(MACHINES, []).append((m, m.log_mark()))
        return m

    yield boot
    for m in booted:
        ks.pool.stop(m)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    ks = item.config.stash[SESSION]
    ks.annotate(item, call, report, item.stash.get(MACHINES, []))
    if report.failed:
        item.stash[FAILED] = True
    if ks.is_worker and not item.config.stash.get(NAMES_SENT, False):
        item.config.stash[NAMES_SENT] = True  # once per worker: for tests a crash drops
        report.user_properties.append((KEY_PLAN_NAMES, plan_names(item.session.items, PLAN)))
    if call.when == "teardown":
        ks.done_with(item, failed=item.stash.get(FAILED, False))


@pytest.hookimpl(trylast=True)
def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    ks = config.stash[SESSION]
    if not ks.plans:
        return []
    lines = [f"kolapy: output dir {ks.output_dir}"]
    if ks.cfg.show_skipped:
        lines += [f"kolapy: deselected {name}: {why}" for name, why in ks.deselected_reasons]
    return lines


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ks = session.config.stash.get(SESSION, None)
    if ks is None:
        return
    hooks = session.config.pluginmanager.get_plugin("kolapy-controller")
    lost = hooks.never_ran() if hooks is not None else []
    if lost:
        print(f"kolapy: error: {len(lost)} test(s) never ran, their xdist worker crashed: "
              f"{' '.join(lost)}", file=sys.stderr)
        session.exitstatus = max(int(session.exitstatus), 1)
        for nodeid in lost:  # in report.json and JUnit too, as infrastructure errors
            ks.record(never_ran_report(nodeid, hooks.plan_names, hooks.crashed))
    try:
        ks.finish(session, exitstatus)
    except OSError as exc:  # disk full, output dir gone: one line, not a traceback
        print(f"kolapy: error: cannot write the reports to {ks.output_dir}: {exc}",
              file=sys.stderr)
        session.exitstatus = REPORTS_UNWRITTEN


def pytest_unconfigure(config: pytest.Config) -> None:
    ks = config.stash.get(SESSION, None)
    if ks is not None:
        ks.close()
