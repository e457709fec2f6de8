"""Pool storage of the libvirt platform: a machine's files as volumes on its host.

With ``--libvirt-storage pool`` (the default for a remote URI) the domain reads
nothing from this machine's filesystem:

* the storage pool (``kolapy`` unless ``--libvirt-pool`` names another) is made when
  missing: a persistent directory pool in ``/var/lib/libvirt/images/kolapy``;
* the base image is uploaded once per content: volume ``base-<sha256 prefix>`` in the
  pool, reused by every later machine and run (an image cache, like
  ``~/.cache/kolapy``; ``virsh vol-delete`` removes it);
* each machine's qcow2 overlay (made here, backed by the base volume's path on the
  host, with its boot partition edited when the test appends kernel arguments), its
  extra disks, its Ignition config, its UEFI vars and a live ISO's private copy are
  uploaded as ``kolapy-<run>-<machine>-<file>`` volumes, registered in
  :mod:`~kolapy.machine.libvirt_hosts` *before* they are made and deleted with the
  machine (pass, failure, Ctrl-C, SIGTERM, atexit).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from kolapy.errors import BootError, InfraError
from kolapy.machine import libvirt_hosts as hosts

log = logging.getLogger("kolapy.machine")

POOL_DIR = "/var/lib/libvirt/images/kolapy"
"""Where a missing pool is made (on the domain's host)."""
_CHUNK = 4 << 20
_hashes: dict[tuple[str, int, int], str] = {}


def pool_xml(name: str, path: str) -> str:
    """A directory storage pool ``name`` at ``path``."""
    pool = ET.Element("pool", type="dir")
    ET.SubElement(pool, "name").text = name
    target = ET.SubElement(pool, "target")
    ET.SubElement(target, "path").text = path
    ET.indent(pool)
    return ET.tostring(pool, encoding="unicode") + "\n"


def volume_xml(name: str, capacity: int) -> str:
    """A raw volume of ``capacity`` bytes, none allocated: an upload fills it."""
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", unit="bytes").text = str(capacity)
    ET.SubElement(vol, "allocation", unit="bytes").text = "0"
    target = ET.SubElement(vol, "target")
    ET.SubElement(target, "format", type="raw")
    ET.indent(vol)
    return ET.tostring(vol, encoding="unicode") + "\n"


def content_hash(path: Path) -> str:
    """The sha256 of a file (remembered per path, size and mtime in this process)."""
    st = path.stat()
    key = (str(path.absolute()), st.st_size, st.st_mtime_ns)
    if key not in _hashes:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        _hashes[key] = digest.hexdigest()
    return _hashes[key]


def base_volume_name(digest: str, image_format: str) -> str:
    """``base-<first 24 hex digits>.<format>``: outside the ``kolapy-`` names, as it is
    kept for later runs."""
    return f"base-{digest[:24]}.{image_format}"


def ensure_pool(uri: str, name: str) -> Any:
    """The active storage pool ``name`` on ``uri``, made (persistent, autostarted) when
    missing."""
    libvirt = hosts._libvirt()
    conn = hosts.connect(uri)
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        log.info("libvirt %s: making storage pool %s in %s", uri, name, POOL_DIR)
        try:
            pool = conn.storagePoolDefineXML(pool_xml(name, POOL_DIR), 0)
            pool.build(0)
            pool.setAutostart(1)
        except libvirt.libvirtError as exc:
            try:  # another worker made it meanwhile
                pool = conn.storagePoolLookupByName(name)
            except libvirt.libvirtError:
                raise InfraError(f"libvirt {uri}: cannot make storage pool {name} in "
                                 f"{POOL_DIR}: {exc} (name an existing one with "
                                 "--libvirt-pool)") from exc
    if not pool.isActive():
        try:
            pool.create(0)
        except libvirt.libvirtError as exc:
            if pool.isActive() == 0:
                raise InfraError(f"libvirt {uri}: cannot start storage pool {name}: "
                                 f"{exc}") from exc
    return pool


def upload(uri: str, pool: Any, local: Path, volume: str, *, keep: bool = False) -> str:
    """Upload ``local`` as volume ``volume`` of ``pool``; its path on the host.

    Unless ``keep``, the volume is registered to be deleted with the run's objects
    (before it is made: an interrupt mid-upload deletes the partial volume).
    """
    libvirt = hosts._libvirt()
    conn = hosts.connect(uri)
    key = f"{pool.name()}/{volume}"
    size = local.stat().st_size
    hosts.register(uri, "volume", key)
    try:
        vol = pool.createXML(volume_xml(volume, size), 0)
    except libvirt.libvirtError as exc:
        hosts.forget(uri, "volume", key)
        raise BootError(f"libvirt {uri}: cannot make volume {key}: {exc}") from exc
    hosts.register(uri, "volume", key, vol)
    try:
        stream = conn.newStream(0)
        vol.upload(stream, 0, size, 0)
        with open(local, "rb") as f:
            while chunk := f.read(_CHUNK):
                view = memoryview(chunk)
                while view:
                    sent = stream.send(view.tobytes())
                    view = view[sent:]
        stream.finish()
    except libvirt.libvirtError as exc:
        hosts.destroy(uri, "volume", key)
        raise BootError(f"libvirt {uri}: uploading {local} to {key} failed: {exc}") from exc
    if keep:  # complete: from now on it is the cache's, not the run's
        hosts.forget(uri, "volume", key)
    return str(vol.path())


def base_volume(uri: str, pool: Any, image: Path, image_format: str) -> str:
    """The path on the host of ``image``'s base volume, uploaded when not there yet.

    Callers hold :func:`~kolapy.machine.libvirt_hosts.placement_lock`, so two kolapy
    processes here never upload the same base at once (nor use a half-uploaded one).
    """
    libvirt = hosts._libvirt()
    _check_standalone(image)
    name = base_volume_name(content_hash(image), image_format)
    try:
        return str(pool.storageVolLookupByName(name).path())
    except libvirt.libvirtError:
        pass
    log.info("libvirt %s: uploading %s as %s/%s", uri, image, pool.name(), name)
    return upload(uri, pool, image, name, keep=True)


def _check_standalone(image: Path) -> None:
    """A base volume is one file: an image with a backing file of its own cannot be one."""
    import json

    from kolapy.machine.preflight import require_qemu_img

    proc = subprocess.run([require_qemu_img(), "info", "--output=json", "-U", str(image)],
                          capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode == 0 and json.loads(proc.stdout).get("backing-filename"):
        raise BootError(f"{image} has a backing file: pool storage uploads one file "
                        "(qemu-img convert it, or use --libvirt-storage files)")


def rebase_overlay(qemu_img: str, overlay: Path, backing: str, backing_format: str) -> None:
    """Point ``overlay``'s backing file at ``backing`` (a path on the domain's host)
    without reading either image (``qemu-img rebase -u``)."""
    cmd = [qemu_img, "rebase", "-q", "-u", "-f", "qcow2", "-b", backing, "-F", backing_format,
           str(overlay)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "LC_ALL": "C"})
    if proc.returncode != 0:
        raise BootError(f"rebasing {overlay} onto {backing} failed: {proc.stderr.strip()}")
