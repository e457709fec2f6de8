"""Which tests share a machine.

Tests whose machine specs are equal and that are not exclusive share one VM
per worker; the subtests of one test share that test's VM.  The share key is
also the xdist group, so a group never spans two workers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from kolapy.config import RunConfig
from kolapy.disksize import disk_gib
from kolapy.enums import Arch, Firmware
from kolapy.machine.spec import MachineSpec


def _canonical(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    return value


def spec_digest(spec: MachineSpec) -> str:
    """A short stable digest of everything that decides how a machine boots."""
    fields = {
        f.name: _canonical(getattr(spec, f.name)) for f in dataclasses.fields(spec) if f.compare
    }
    blob = json.dumps(fields, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def template_digest(spec: MachineSpec) -> str:
    """The digest that decides which machines may be clones of one saved machine.

    Like :func:`spec_digest` but blind to the image path: one run tests one
    image, and the plan (made before the reference image is located) and the
    pool (after) must agree.
    """
    return spec_digest(dataclasses.replace(spec, image=Path("-")))


def restore_digests(plans: Any, workers: int = 1) -> set[str]:
    """Template digests that several machines of a run share (a template pays off).

    ``plans`` are the session's item plans; a machine is counted once per share
    key.  Clusters, denylisted tests and tests flagged ``fresh_boot`` are left out.
    Each of ``workers`` (xdist) saves its own template, so a spec qualifies when
    its machines come to at least two per worker: a worker with one such machine
    would pay a boot and a restore for nothing.
    """
    from collections import Counter

    seen: set[str] = set()
    counts: Counter[str] = Counter()
    for plan in plans:
        meta = plan.meta
        if (plan.denied is not None or plan.key in seen
                or "fresh_boot" in getattr(meta, "flags", ())
                or int(getattr(meta, "cluster_size", 1) or 1) > 1):
            continue
        seen.add(plan.key)
        counts[template_digest(plan.spec)] += 1
    return {digest for digest, n in counts.items() if n >= 2 * max(1, workers)}


def share_key(parent_name: str, spec: MachineSpec, *, exclusive: bool, conflicts: bool) -> str:
    """The group of tests that use one machine.

    Exclusive tests (kola's default) share only among their own subtests; a
    non-exclusive test that declares conflicts keeps to itself as well.
    """
    digest = spec_digest(spec)
    if exclusive or conflicts:
        return f"kola-{parent_name}-{digest}"
    return f"kola-shared-{digest}"


def effective_firmware(cfg: RunConfig) -> Firmware:
    """aarch64 machines boot UEFI whatever was asked (there is no BIOS there)."""
    return Firmware.UEFI if cfg.arch is Arch.AARCH64 else cfg.firmware


def spec_for(meta: Any, cfg: RunConfig, image: Path) -> MachineSpec:
    """The machine spec of a test: run settings raised to the test's minimums."""
    memory = max(cfg.memory_mib, int(getattr(meta, "min_memory", 0) or 0))
    min_disk = getattr(meta, "min_disk", 0) or 0
    firmware = effective_firmware(cfg)
    ignition = getattr(meta, "ignition", None)
    if isinstance(ignition, (str, Path)):
        from kolapy.ignition import Ignition

        ignition = Ignition.load(Path(ignition))
    if cfg.iso is not None:  # --nestos-iso: the live system (disk0 stays blank)
        image = cfg.iso
    members: tuple[Any, ...] = ()
    make = getattr(meta, "member_ignition", None)
    if make is not None:  # one config per member, made now: bad ones fail before any boot
        from kolapy.errors import BadInputError
        from kolapy.machine.cluster import member_configs

        try:
            members = member_configs(make, int(getattr(meta, "cluster_size", 1) or 1))
        except BadInputError as exc:
            raise BadInputError(f"test {meta.full_name} ({meta.nodeid}): {exc}") from None
    return MachineSpec(
        image=image,
        arch=cfg.arch,
        firmware=firmware,
        memory_mib=memory,
        disk_size_gib=max(float(min_disk), disk_gib(cfg.disk_size, image) or 0.0) or None,
        ignition=ignition,
        member_ignition=members,
        append_kargs=tuple(getattr(meta, "append_kargs", ()) or ()),
        append_firstboot_kargs=tuple(getattr(meta, "append_firstboot_kargs", ()) or ()),
        additional_disks=tuple(getattr(meta, "additional_disks", ()) or ()),
        additional_nics=int(getattr(meta, "additional_nics", 0) or 0),
        distro=cfg.distro,
        boot_media="iso" if cfg.iso else "disk",
    )
