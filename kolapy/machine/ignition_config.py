"""The Ignition config a machine boots with: the test's config + the harness's fragment."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from kolapy.ignition import Ignition, harness_fragment, validate
from kolapy.transport.ssh import SSHKeyPair

log = logging.getLogger(__name__)

HOST_KEY_PATH = "/etc/ssh/ssh_host_ed25519_key"
_FRAGMENT_VERSION = "3.0.0"  # the oldest spec: merging never raises the test config's version


def to_ignition(config: Any) -> Ignition:
    """Accept None, an :class:`Ignition`, a dict, or a path to ``.ign``/``.bu``."""
    if config is None:
        return Ignition(_FRAGMENT_VERSION)
    if isinstance(config, Ignition):
        return config
    if isinstance(config, str | os.PathLike):
        return Ignition.load(Path(config))
    return Ignition.from_dict(config)


def machine_config(
    test_config: Any, *, distro: str, ssh_key: SSHKeyPair, host_key: SSHKeyPair,
    source: str | None = None,
) -> Ignition:
    """Merge the harness fragment and the pinned SSH host key into the test's config; validate.

    Raises :class:`~kolapy.errors.BadInputError` (one line) if the result is invalid.
    """
    base = to_ignition(test_config)
    host_keys = (
        Ignition(_FRAGMENT_VERSION)
        .add_file(HOST_KEY_PATH, host_key.private_openssh, mode=0o600)
        .add_file(HOST_KEY_PATH + ".pub", host_key.public_openssh + "\n", mode=0o644)
    )
    merged = base.merge(harness_fragment(distro, ssh_key.public_openssh)).merge(host_keys)
    for warning in validate(merged, source=source or base.source, allow_warnings=True):
        log.warning("%s", warning)
    return merged
