"""Ignition spec versions kolapy reads and writes."""

from __future__ import annotations

import re

DEFAULT_VERSION = "3.3.0"
"""What kolapy emits: the newest spec Debian's Ignition 2.14 reads (NestOS reads 3.4 too)."""

SUPPORTED_VERSIONS: tuple[str, ...] = ("3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0")
"""Spec versions a config may declare (NestOS's Ignition reads all of them)."""

EXTERNAL_VALIDATOR_MAX = (3, 3)
"""Debian's ignition-validate 2.14 rejects 3.4.0, so newer configs skip it."""

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def version_tuple(version: str) -> tuple[int, int, int]:
    """``"3.3.0"`` -> ``(3, 3, 0)``; raises ``ValueError`` on anything else."""
    m = _VERSION_RE.match(version)
    if m is None:
        raise ValueError(f"not a spec version: {version!r}")
    return (int(m[1]), int(m[2]), int(m[3]))


def newer_version(a: str, b: str) -> str:
    """The newer of two spec versions (an unparsable one loses)."""
    try:
        ta = version_tuple(a)
    except ValueError:
        return b
    try:
        tb = version_tuple(b)
    except ValueError:
        return a
    return a if ta >= tb else b
