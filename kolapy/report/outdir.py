"""The output directory: kola's layout and naming.

Default: ``_kola_temp/<platform>-<YYYY-MM-DD-HHMM>-<pid>/`` with a
``_kola_temp/<platform>-latest`` symlink to it; per test and machine
``<out>/<kola-test>/<machine>/`` holds console.txt, journal.txt, ignition.json
and ssh-config.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

from kolapy.errors import BadInputError

DEFAULT_BASE = Path("_kola_temp")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+:@\[\]=,-]")


def default_output_dir(
    platform: str = "qemu",
    base: Path = DEFAULT_BASE,
    now: dt.datetime | None = None,
    pid: int | None = None,
) -> Path:
    """``<base>/<platform>-<YYYY-MM-DD-HHMM>-<pid>`` (kola's default name)."""
    stamp = (now or dt.datetime.now()).strftime("%Y-%m-%d-%H%M")
    return Path(base) / f"{platform}-{stamp}-{os.getpid() if pid is None else pid}"


def make_output_dir(path: Path, platform: str, link: bool | None = None) -> Path:
    """Create ``path`` (and parents); point ``<platform>-latest`` beside it at it.

    ``link=None`` makes the link only for kola-style default dirs (parent named
    ``_kola_temp``), so a user's ``--output-dir /tmp/x`` leaves /tmp alone.  The
    link is replaced atomically; an existing non-link file of that name is an error.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if link is None:
        link = path.absolute().parent.name == DEFAULT_BASE.name
    if link:
        link_path = path.parent / f"{platform}-latest"
        if link_path.exists() and not link_path.is_symlink():
            raise BadInputError(f"{link_path} exists and is not a symlink")
        tmp = path.parent / f".{platform}-latest.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(path.name, tmp)
        os.replace(tmp, link_path)  # atomic: readers never see a missing link
    return path


def safe_component(name: str) -> str:
    """A name made safe as one path component (no ``/``, no ``..``)."""
    text = _UNSAFE.sub("_", name) or "_"
    return "_" if text in (".", "..") else text


def test_artifact_dir(out: Path, test_name: str, machine_name: str) -> Path:
    """``<out>/<kola-test>/<machine>/``: one dir per kola test, shared by its subtests.

    ``basic/ssh-port`` uses ``<out>/basic/<machine>/`` (the subtest part is dropped).
    """
    parent = test_name.split("/", 1)[0]
    return Path(out) / safe_component(parent) / safe_component(machine_name)


test_artifact_dir.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
