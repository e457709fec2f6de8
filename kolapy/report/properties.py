"""``<out>/properties.json``: what was run, on what, with which versions."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform as _platform
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def qemu_version(binary: str = "qemu-system-x86_64") -> str | None:
    """First line of ``<binary> --version``, or None when it cannot be run."""
    try:
        proc = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = proc.stdout.strip().splitlines()
    return first[0] if proc.returncode == 0 and first else None


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file (streamed; images are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def image_checksum(path: str | Path) -> str | None:
    """Hex SHA-256 of the image under test, or None when it is not a readable file."""
    try:
        return file_sha256(Path(path)) if Path(path).is_file() else None
    except OSError:
        return None


def collect_properties(
    *,
    command_line: list[str] | None = None,
    image: str | Path | None = None,
    arch: str = "",
    platform: str = "qemu",
    accel: str = "",
    image_sha256: bool = False,
    qemu_binary: str | None = None,
    start_time: dt.datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A properties dict with kolapy's standard keys; ``extra`` keys are kept as given."""
    from kolapy import __version__

    props: dict[str, Any] = {
        "command_line": list(command_line if command_line is not None else sys.argv),
        "image": str(image) if image is not None else None,
        "arch": arch,
        "platform": platform,
        "accel": accel,
        "kolapy_version": __version__,
        "python_version": _platform.python_version(),
        "start_time": (start_time or dt.datetime.now(dt.UTC)).isoformat(),
    }
    if image_sha256 and image is not None and Path(image).is_file():
        props["image_sha256"] = file_sha256(Path(image))
    if qemu_binary:
        props["qemu_version"] = qemu_version(qemu_binary)
    props.update(extra)
    return props


def write_properties(out: Path, properties: Mapping[str, Any]) -> Path:
    """Write ``<out>/properties.json`` (adds ``start_time``/``python_version`` if missing)."""
    props = dict(properties)
    props.setdefault("python_version", _platform.python_version())
    props.setdefault("written_at", dt.datetime.now(dt.UTC).isoformat())
    path = Path(out) / "properties.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(props, indent=2, default=str) + "\n", encoding="utf-8")
    return path
