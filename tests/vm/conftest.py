"""Shared fixtures of the VM tests: the reference image (built once per machine, cached)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ref_image() -> Path:
    """The x86_64 reference image (built on first use; file-locked across xdist workers)."""
    from kolapy.refimage import ensure_image

    return ensure_image()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
