"""Fixtures of the fault tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ref_image() -> Path:
    """The x86_64 reference image (built on first use; file-locked across xdist workers)."""
    from kolapy.refimage import ensure_image

    return ensure_image()
