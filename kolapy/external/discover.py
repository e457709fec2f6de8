"""Find kola external tests under ``DIR/tests/kola`` and name them as kola does.

kola (mantle/kola/harness.go ``registerTestDir``) walks ``tests/kola``
recursively.  In each directory every regular file (symlinks followed) with the
other-execute bit is a test; ``config.ign``/``config.bu``, ``kola.json`` and
``data/`` (a directory or a symlink to one) belong to that directory only.  A
test is named ``ext.<basename of DIR>.<subdirectories joined by dots>.<exe>``;
when a directory's only executable is ``test.sh`` the ``.test.sh`` is left off.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from kolapy.errors import BadInputError
from kolapy.external.metadata import ExtMeta, load_metadata

log = logging.getLogger("kolapy.external")

TESTS_SUBDIR = Path("tests") / "kola"
DEFAULT_TEST = "test.sh"
DATA_DIR = "data"


@dataclass(frozen=True)
class ExtTest:
    """One external test as found on disk."""

    name: str
    """The kola name (``ext.config.podman.rootless``)."""
    executable: Path
    directory: Path
    config: Path | None
    """``config.ign`` or ``config.bu`` of the test's directory."""
    data: Path | None
    """The ``data`` directory (symlinks resolved)."""
    meta: ExtMeta

    @property
    def exe_name(self) -> str:
        """The executable's basename (kola's ``KOLA_TEST_EXE``)."""
        return self.executable.name


def _is_executable(path: Path) -> bool:
    try:
        st = path.stat()  # follows symlinks, as kola does
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & stat.S_IXOTH)


def discover(root: Path) -> list[ExtTest]:
    """Every external test of the project at ``root`` (``root/tests/kola``), sorted by name.

    A missing ``tests/kola`` gives no tests (as kola); a ``root`` that does not
    exist is a :class:`BadInputError`.  Metadata errors propagate
    (:class:`~kolapy.meta.MetadataError`).
    """
    root = Path(root).absolute()
    if not root.is_dir():
        raise BadInputError(f"external test directory {root} does not exist")
    tests_dir = root / TESTS_SUBDIR
    if not tests_dir.is_dir():
        log.warning("%s has no %s: no external tests there", root, TESTS_SUBDIR)
        return []
    found: list[ExtTest] = []
    _walk(tests_dir, f"ext.{root.name}", found)
    names: dict[str, Path] = {}
    for t in found:
        if t.name in names:
            raise BadInputError(f"external tests {names[t.name]} and {t.executable} are both "
                                f"named {t.name}")
        names[t.name] = t.executable
    return sorted(found, key=lambda t: t.name)


def _walk(directory: Path, prefix: str, out: list[ExtTest]) -> None:
    executables: list[Path] = []
    config: Path | None = None
    kola_json: Path | None = None
    data: Path | None = None
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        name = entry.name
        if _is_executable(entry):
            executables.append(entry)
        elif name in ("config.ign", "config.bu") and entry.is_file():
            if config is not None:
                raise BadInputError(f"{directory}: both config.ign and config.bu")
            config = entry
        elif name == "config.fcc" and entry.is_file():
            raise BadInputError(f"{entry}: config.fcc is not supported anymore; "
                                "rename it to config.bu")
        elif name == "kola.json" and entry.is_file():
            kola_json = entry
        elif name == DATA_DIR and entry.is_dir():
            data = entry.resolve()
        elif entry.is_dir():
            _walk(entry, f"{prefix}.{name}", out)
        elif entry.is_file() and _has_shebang(entry):
            log.warning("non-executable file with a shebang: %s", entry)
    for exe in executables:
        name = prefix
        if len(executables) > 1 or exe.name != DEFAULT_TEST:
            name = f"{prefix}.{exe.name}"
        meta = load_metadata(exe, kola_json)
        out.append(ExtTest(name, exe, directory, config, data, meta))


def _has_shebang(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def relative_name(test: ExtTest, root: Path) -> str:
    """The test's path below ``root/tests/kola`` (for messages)."""
    return os.path.relpath(test.executable, Path(root) / TESTS_SUBDIR)
