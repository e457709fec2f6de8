"""An external test's Ignition config: ``config.ign`` or ``config.bu``, plus the runner.

Butane goes through kolapy's translator (:mod:`kolapy.ignition.butane`).  A
*Butane feature kolapy's subset does not implement* (disks, RAID, LUKS, GRUB
users, ...) makes the test SKIP with the feature named: kola would run it,
kolapy cannot, and saying so is honest.  Anything else the translator refuses
(a key that is not Butane at all, a wrong type, a local file reference) is an
error naming the file and the key (exit 2), never silently dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kolapy.errors import BadInputError
from kolapy.external.guest import runner_fragment
from kolapy.ignition import Ignition

# Real Butane (fcos/nestos variants) sections and keys that kolapy's subset lacks.
BUTANE_GAPS: dict[tuple[str, ...], str] = {
    ("storage", "disks"): "Butane storage.disks (partitioning)",
    ("storage", "raid"): "Butane storage.raid",
    ("storage", "luks"): "Butane storage.luks",
    ("storage", "trees"): "Butane storage.trees (local file trees)",
    ("boot_device",): "Butane boot_device",
    ("grub",): "Butane grub (GRUB users)",
    ("ignition", "proxy"): "Butane ignition.proxy",
    ("ignition", "security"): "Butane ignition.security (TLS CAs)",
}


def butane_gaps(text: str) -> list[str]:
    """Real Butane features in ``text`` that kolapy's translator does not implement."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return []  # the translator reports the syntax error
    if not isinstance(doc, dict):
        return []
    found = []
    for path, feature in BUTANE_GAPS.items():
        node: Any = doc
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node:
            found.append(f"{feature} is not supported by kolapy's Butane translator")
    return found


def load_test_config(path: Path | None) -> tuple[Ignition | None, list[str]]:
    """The test's own config and the Butane gaps that make it unrunnable.

    With gaps the config is None (it cannot be translated faithfully).  Raises
    :class:`BadInputError` naming the file for anything else wrong with it.
    """
    if path is None:
        return None, []
    if path.suffix == ".bu":
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInputError(f"{path}: cannot read: {exc}") from None
        gaps = butane_gaps(text)
        if gaps:
            return None, gaps
    return Ignition.load(path), []


def machine_ignition(test_config: Ignition | None) -> Ignition:
    """The test's config with the external-test runner merged in."""
    runner = runner_fragment()
    return runner if test_config is None else test_config.merge(runner)
