"""The output directory must take files before anything boots (else: exit 2, one line)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from kolapy.errors import BadInputError


def check_output_dir(path: Path) -> None:
    """Create ``path`` if needed and prove a file can be written there.

    Raises :class:`BadInputError` naming the directory when it cannot be created
    or written (read-only file system, no permission, no space left).
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".kolapy-probe-", dir=path)
        try:
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise BadInputError(f"output directory {path} is not writable: {reason}") from None
