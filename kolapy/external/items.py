"""External tests as pytest items: ordinary kola tests for selection, sharing and reports.

Each test becomes an :class:`ExtTestItem` carrying a ``kola`` marker built from
its metadata (name, tags plus kola's ``external``, architectures, kargs,
``exclusive``, ...) and its Ignition config (the test's own merged with the
runner fragment), so the session plans it like any built-in test: selection,
machine specs, sharing of non-exclusive tests, restore, reports, live view.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from kolapy.errors import BadInputError
from kolapy.external.config import load_test_config, machine_ignition
from kolapy.external.discover import ExtTest, discover

EXTERNAL_TAG = "external"
NEEDS_INTERNET = "needs-internet"
NO_INTERNET = ("needs-internet: guests have no network here (user-mode networking "
               "with restrict=on)")


def skip_reasons(test: ExtTest, config_gaps: Sequence[str]) -> list[str]:
    """Why kolapy cannot run ``test`` (features it lacks), empty when it can."""
    reasons = list(test.meta.gaps) + list(config_gaps)
    if NEEDS_INTERNET in test.meta.values.get("tags", ()):
        reasons.append(NO_INTERNET)
    return reasons


def marker_values(test: ExtTest, ignition: Any) -> dict[str, Any]:
    """The ``@kola`` keywords of ``test``."""
    values = dict(test.meta.values)
    values["name"] = test.name
    values["tags"] = [EXTERNAL_TAG, *values.get("tags", ())]
    values["ignition"] = ignition
    return values


class ExtProject(pytest.Collector):
    """The external tests of one project directory (``-E DIR``)."""

    def __init__(self, *, root: Path, first_slot: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.first_slot = first_slot
        self.tests = discover(root)

    def collect(self) -> list[pytest.Item]:
        items: list[pytest.Item] = []
        slot = self.first_slot
        for test in self.tests:
            config, reasons = self._config(test)
            this_slot = 0
            if not test.meta.exclusive:
                this_slot, slot = slot, slot + 1
            items.append(ExtTestItem.from_parent(
                self, name=test.name, test=test, slot=this_slot,
                ignition=machine_ignition(config), skip=reasons,
            ))
        return items

    @staticmethod
    def _config(test: ExtTest) -> tuple[Any, list[str]]:
        """The test's config and why it cannot run (a bad config of a test that is
        skipped anyway is one more reason, not an error)."""
        reasons = skip_reasons(test, ())
        try:
            config, gaps = load_test_config(test.config)
        except BadInputError as exc:
            if not reasons:
                raise
            return None, [*reasons, str(exc)]
        if gaps or reasons:
            return None, [*reasons, *gaps]
        return config, []

    @property
    def shared_count(self) -> int:
        """How many non-exclusive tests (slots) this project uses."""
        return sum(1 for t in self.tests if not t.meta.exclusive)


class ExtTestItem(pytest.Item):
    """One kola external test."""

    def __init__(self, *, test: ExtTest, slot: int, ignition: Any, skip: Sequence[str],
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.test = test
        self.slot = slot
        self.skip_reasons = list(skip)
        self.add_marker(pytest.mark.kola(**marker_values(test, ignition)))
        if self.skip_reasons:
            self.add_marker(pytest.mark.skip(reason="; ".join(self.skip_reasons)))

    def runtest(self) -> None:
        from kolapy.external.run import ExtTestFailed, render, run_test
        from kolapy.plugin import MACHINES, SESSION

        session = self.config.stash[SESSION]
        machine = session.machine_for(self)
        seen = self.stash.setdefault(MACHINES, [])
        if all(machine is not m for m, _ in seen):
            seen.append((machine, machine.log_mark()))
        result = run_test(machine, self.test, self.slot, self.timeout_s(machine))
        output = render(result)
        self.user_properties.append(("kola_note", output))  # the report's output
        print(output)  # pytest shows it with a failure
        if not result.passed:
            raise ExtTestFailed(f"{self.test.name}: {result.reason}")

    def timeout_s(self, machine: Any) -> float:
        """``timeoutMin`` as written; kola's default 10 min scaled like every wait."""
        if self.test.meta.timeout_min:
            return float(self.test.meta.timeout_min) * 60
        return float(self.test.meta.values["timeout"]) * float(
            getattr(machine, "timeout_scale", 1.0))

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
        from kolapy.external.run import ExtTestFailed

        if isinstance(excinfo.value, ExtTestFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.test.executable, 0, self.test.name


def collect_external(session: pytest.Session, dirs: Sequence[str]) -> list[pytest.Item]:
    """The items of every ``--kola-exttest`` directory, in order."""
    items: list[pytest.Item] = []
    slot = 1
    for d in dirs:
        root = Path(d).expanduser().absolute()
        project = ExtProject.from_parent(session, name=str(root), nodeid=str(root), root=root,
                                         first_slot=slot)
        slot += project.shared_count
        found = project.collect()
        # what pytest does for collected files (the terminal's "collected N items")
        session.ihook.pytest_collectreport(
            report=pytest.CollectReport(project.nodeid, "passed", None, list(found)))
        items += found
    return items
