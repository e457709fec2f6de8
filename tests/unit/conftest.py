"""Unit tests keep kolapy's on-disk state (libvirt journals) in a directory of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kolapy.machine import libvirt_journal


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory,
                       monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("KOLAPY_STATE_DIR", str(state))
    yield state
    libvirt_journal.finish()  # the next test opens a journal of its own
