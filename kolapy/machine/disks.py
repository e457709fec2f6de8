"""Disk files of a machine: the qcow2 overlay over the base image, and blank extra disks."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kolapy.errors import BootError


def create_overlay(
    qemu_img: str, image: Path, image_format: str, overlay: Path, size_gib: float | None
) -> None:
    """A qcow2 overlay backed by ``image`` (absolute path); the image is never written."""
    cmd = [qemu_img, "create", "-q", "-f", "qcow2", "-b", str(image.absolute()),
           "-F", image_format, str(overlay)]
    if size_gib:
        cmd.append(f"{int(size_gib * 1024)}M")
    run_checked(cmd, f"creating the disk overlay {overlay}")


def create_blank(qemu_img: str, path: Path, size_gib: float) -> None:
    """An empty qcow2 disk of ``size_gib``."""
    run_checked([qemu_img, "create", "-q", "-f", "qcow2", str(path), f"{int(size_gib * 1024)}M"],
                f"creating the disk {path}")


def run_checked(cmd: list[str], what: str) -> None:
    """Run a short helper command; a failure is a :class:`BootError` with its stderr."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        raise BootError(f"{what} failed: {proc.stderr.strip()}\ncommand: {' '.join(cmd)}")
