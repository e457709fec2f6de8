"""A docker-archive (``docker save`` format) built in Python from one static binary.

``podman load``, ``docker load`` and ``isula load`` all read this format:
``manifest.json`` + an image config ``<sha256>.json`` + one layer ``<sha256>/layer.tar``.
The archive is deterministic (fixed mtimes, sorted members): the same busybox binary
always gives the same image id, so caches and guests can compare by digest.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kolapy.containers.oci import tarinfo
from kolapy.enums import Arch

#: The name every suite uses for the test image (unambiguous for all three engines).
DEFAULT_TAG = "localhost/kolapy/busybox:latest"

#: busybox applets linked in the image (the suites use sh, httpd, wget, cat, echo, sleep, id).
APPLETS = (
    "ash", "basename", "cat", "chmod", "cp", "date", "dirname", "echo", "env", "false",
    "grep", "head", "hostname", "httpd", "id", "ip", "kill", "ls", "mkdir", "mv", "nc",
    "ping", "printf", "ps", "pwd", "rm", "sed", "sh", "sleep", "sort", "stat", "tail",
    "tee", "test", "timeout", "touch", "tr", "true", "uname", "wc", "wget", "whoami",
)



@dataclass(frozen=True)
class ImageArchive:
    """A docker-archive on disk and the name its manifest gives the image."""

    path: Path
    tag: str
    image_id: str
    """``sha256:<hex>`` of the image config (what ``inspect`` reports as the id)."""


def _add(tar: tarfile.TarFile, name: str, *, data: bytes | None = None, mode: int = 0o644,
         kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarinfo(name, kind, mode)
    if kind == tarfile.SYMTYPE:
        info.linkname = link
        tar.addfile(info)
    elif kind == tarfile.DIRTYPE:
        tar.addfile(info)
    else:
        payload = data or b""
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))


def layer_tar(busybox: bytes, applets: Iterable[str] = APPLETS) -> bytes:
    """The image's only layer: /bin/busybox, applet links, /etc basics, /tmp, /www, /data."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for d in ("bin", "data", "etc", "root", "tmp", "www"):
            _add(tar, d, kind=tarfile.DIRTYPE, mode=0o1777 if d == "tmp" else 0o755)
        _add(tar, "bin/busybox", data=busybox, mode=0o755)
        for applet in sorted(set(applets) - {"busybox"}):
            _add(tar, f"bin/{applet}", kind=tarfile.SYMTYPE, link="busybox", mode=0o777)
        _add(tar, "etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n"
             b"nobody:x:65534:65534:nobody:/:/bin/false\n")
        _add(tar, "etc/group", data=b"root:x:0:\nnobody:x:65534:\n")
        _add(tar, "www/index.html", data=b"kolapy test image\n")
    return buf.getvalue()


def image_config(arch: Arch, diff_id: str) -> bytes:
    """The OCI/docker image config JSON for one layer with ``diff_id``."""
    config = {
        "architecture": Arch(arch).debian,
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/bin"],
            "Cmd": ["sh"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "kolapy busybox image"}],
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def build_archive(busybox: bytes, arch: Arch, dest: Path, tag: str = DEFAULT_TAG) -> ImageArchive:
    """Write a docker-archive holding ``busybox`` for ``arch`` to ``dest``, named ``tag``."""
    layer = layer_tar(busybox)
    layer_hex = hashlib.sha256(layer).hexdigest()
    config = image_config(arch, f"sha256:{layer_hex}")
    config_hex = hashlib.sha256(config).hexdigest()
    manifest = [{
        "Config": f"{config_hex}.json",
        "RepoTags": [tag],
        "Layers": [f"{layer_hex}/layer.tar"],
    }]
    repositories = {tag.rsplit(":", 1)[0]: {tag.rsplit(":", 1)[1]: layer_hex}}
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        _add(tar, f"{layer_hex}", kind=tarfile.DIRTYPE, mode=0o755)
        _add(tar, f"{layer_hex}/VERSION", data=b"1.0")
        _add(tar, f"{layer_hex}/layer.tar", data=layer)
        _add(tar, f"{config_hex}.json", data=config)
        _add(tar, "manifest.json", data=json.dumps(manifest).encode())
        _add(tar, "repositories", data=json.dumps(repositories).encode())
    return ImageArchive(path=dest, tag=tag, image_id=f"sha256:{config_hex}")


def read_archive(path: Path) -> ImageArchive:
    """The tag and image id a docker-archive at ``path`` declares (a user's own image)."""
    try:
        with tarfile.open(path) as tar:
            member = tar.extractfile("manifest.json")
            if member is None:
                raise ValueError("manifest.json is not a file")
            manifest = json.loads(member.read())
    except (OSError, KeyError, tarfile.TarError, ValueError) as exc:
        raise ValueError(f"{path}: not a docker-archive (docker save format): {exc}") from exc
    if not manifest or not manifest[0].get("RepoTags"):
        raise ValueError(f"{path}: manifest.json names no image (RepoTags is empty)")
    entry = manifest[0]
    config_hex = Path(entry["Config"]).stem.removeprefix("sha256:").split(".")[0]
    return ImageArchive(path=path, tag=entry["RepoTags"][0], image_id=f"sha256:{config_hex}")
