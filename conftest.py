"""Repository-root conftest (dev conveniences only).

A plain ``pytest`` (or ``pytest -n 2``) in a checkout also runs kolapy's own
kola external tests, ``tests_external/`` (as ``--kola-exttest tests_external``
would); ``pytest tests/unit`` or any other explicit path does not.  They boot
machines, so they carry the ``vm`` marker (``-m 'not vm'`` leaves them out).
"""

from __future__ import annotations

from pathlib import Path

import pytest

EXTERNAL = Path(__file__).parent / "tests_external"


def pytest_configure(config: pytest.Config) -> None:
    # also when pytest runs from elsewhere and only imports kolapy from this checkout
    config.addinivalue_line("markers", "vm: boots a virtual machine (slow under TCG)")
    if hasattr(config, "workerinput"):
        return  # xdist workers get the option from the controller
    if config.args_source is not pytest.Config.ArgsSource.TESTPATHS:
        return
    dirs = config.getoption("kola_exttest", None) or []
    if str(EXTERNAL) not in dirs:
        config.option.kola_exttest = [*dirs, str(EXTERNAL)]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    from kolapy.external.items import ExtTestItem

    for item in items:
        if isinstance(item, ExtTestItem):
            item.add_marker(pytest.mark.vm)
