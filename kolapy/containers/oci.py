"""OCI image-layout archives (``oci-layout`` + ``index.json`` + ``blobs/sha256/``) in Python.

What ``ctr images import``, ``podman load`` and ``skopeo copy oci-archive:`` read:
a tar holding the OCI image layout of one image -- one uncompressed tar layer
per :class:`Layer`, the image config, the image manifest, and ``index.json``
naming the image (``io.containerd.image.name`` for containerd, the tag as
``org.opencontainers.image.ref.name``).  Everything is deterministic (fixed
mtimes, root ownership, sorted members): the same inputs always give the same
digests.  Layers are written to files next to the archive, never held in
memory whole (a kube-apiserver layer is ~120 MB).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kolapy.enums import Arch

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
CREATED = "1970-01-01T00:00:00Z"
_EPOCH = 0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One member of a layer: a regular file (from ``source`` or ``data``), a directory
    (``kind="dir"``) or a symlink to ``target`` (``kind="symlink"``)."""

    path: str
    kind: str = "file"
    source: Path | None = None
    data: bytes | None = None
    target: str = ""
    mode: int = 0o644

    def __post_init__(self) -> None:
        if self.kind not in ("file", "dir", "symlink"):
            raise ValueError(f"{self.path}: unknown entry kind {self.kind!r}")
        if self.kind == "file" and (self.source is None) == (self.data is None):
            raise ValueError(f"{self.path}: a file needs exactly one of source or data")
        if self.kind == "symlink" and not self.target:
            raise ValueError(f"{self.path}: a symlink needs a target")

    @property
    def name(self) -> str:
        """The path inside the layer: relative, normalised, no leading ``/``."""
        return str(PurePosixPath("/", self.path)).lstrip("/")


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an image config (what ``docker inspect`` calls Config)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    user: str = ""
    workdir: str = "/"
    labels: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"Env": list(self.env), "WorkingDir": self.workdir}
        if self.entrypoint:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            out["Cmd"] = list(self.cmd)
        if self.user:
            out["User"] = self.user
        if self.labels:
            out["Labels"] = dict(sorted(self.labels.items()))
        return out


@dataclass(frozen=True)
class OciImage:
    """An OCI archive written by :func:`write_oci_archive`."""

    path: Path
    name: str
    """The full reference, e.g. ``registry.k8s.io/pause:3.10.2``."""
    manifest_digest: str
    config_digest: str
    """``sha256:<hex>``: the image id containerd and podman report."""
    layer_digests: tuple[str, ...]


def split_reference(name: str) -> tuple[str, str]:
    """``registry.k8s.io/pause:3.10.2`` -> (``registry.k8s.io/pause``, ``3.10.2``).

    A reference without a tag is refused (an image in an archive must be findable by tag).
    """
    repo, sep, tag = name.rpartition(":")
    if not sep or not repo or not tag or "/" in tag:
        raise ValueError(f"image reference {name!r} has no tag (expected REPOSITORY:TAG)")
    return repo, tag


def with_parents(entries: Iterable[Entry]) -> list[Entry]:
    """``entries`` plus a directory entry (0755) for every parent not given, sorted by path."""
    by_name: dict[str, Entry] = {}
    for entry in entries:
        if entry.name in by_name:
            raise ValueError(f"{entry.name}: given twice in one layer")
        by_name[entry.name] = entry
    for name in list(by_name):
        for parent in PurePosixPath(name).parents:
            key = str(parent)
            if key != "." and key not in by_name:
                by_name[key] = Entry(key, kind="dir", mode=0o755)
    return [by_name[name] for name in sorted(by_name)]


def tarinfo(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    """A deterministic member header: mtime 0, owned by root (same bytes every build)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = _EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def write_layer(entries: Iterable[Entry], dest: Path) -> str:
    """Write one uncompressed layer tar of ``entries`` (parents added) to ``dest``;
    return its digest ``sha256:<hex>`` (for a plain tar layer also its diff id)."""
    with tarfile.open(dest, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in with_parents(entries):
            if entry.kind == "dir":
                tar.addfile(tarinfo(entry.name, tarfile.DIRTYPE, entry.mode))
            elif entry.kind == "symlink":
                info = tarinfo(entry.name, tarfile.SYMTYPE, 0o777)
                info.linkname = entry.target
                tar.addfile(info)
            else:
                info = tarinfo(entry.name, tarfile.REGTYPE, entry.mode)
                if entry.data is not None:
                    info.size = len(entry.data)
                    tar.addfile(info, io.BytesIO(entry.data))
                else:
                    assert entry.source is not None
                    info.size = entry.source.stat().st_size
                    with entry.source.open("rb") as f:
                        tar.addfile(info, f)
    return "sha256:" + _file_sha256(dest)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _json_blob(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _descriptor(media_type: str, digest: str, size: int, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def write_oci_archive(
    dest: Path,
    name: str,
    arch: Arch,
    layers: Sequence[Iterable[Entry]],
    config: ImageConfig | None = None,
    created_by: str = "kolapy",
) -> OciImage:
    """Write the OCI archive of one image ``name`` for ``arch`` to ``dest``.

    Each item of ``layers`` becomes one layer (bottom first).  ``dest`` is
    replaced atomically (written beside it, then renamed).
    """
    _, tag = split_reference(name)
    if not layers:
        raise ValueError(f"{name}: an image needs at least one layer")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".oci-", dir=dest.parent) as tmp:
        work = Path(tmp)
        layer_files: list[tuple[str, Path]] = []
        for i, entries in enumerate(layers):
            path = work / f"layer{i}.tar"
            layer_files.append((write_layer(entries, path), path))
        image_config = {
            "architecture": Arch(arch).debian,
            "os": "linux",
            "created": CREATED,
            "config": (config or ImageConfig()).to_json(),
            "rootfs": {"type": "layers", "diff_ids": [d for d, _ in layer_files]},
            "history": [{"created": CREATED, "created_by": created_by}
                        for _ in layer_files],
        }
        config_blob = _json_blob(image_config)
        config_digest = "sha256:" + hashlib.sha256(config_blob).hexdigest()
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": _descriptor(MEDIA_CONFIG, config_digest, len(config_blob)),
            "layers": [_descriptor(MEDIA_LAYER, d, p.stat().st_size) for d, p in layer_files],
        }
        manifest_blob = _json_blob(manifest)
        manifest_digest = "sha256:" + hashlib.sha256(manifest_blob).hexdigest()
        index = {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [_descriptor(
                MEDIA_MANIFEST, manifest_digest, len(manifest_blob),
                annotations={ANNOTATION_CONTAINERD_NAME: name, ANNOTATION_REF_NAME: tag},
                platform={"architecture": Arch(arch).debian, "os": "linux"},
            )],
        }
        partial = work / "archive.tar"
        with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as tar:
            def add_bytes(member: str, data: bytes) -> None:
                info = tarinfo(member, tarfile.REGTYPE, 0o644)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

            for d in ("blobs", "blobs/sha256"):
                tar.addfile(tarinfo(d, tarfile.DIRTYPE, 0o755))
            add_bytes("oci-layout", _json_blob({"imageLayoutVersion": "1.0.0"}))
            add_bytes("index.json", _json_blob(index))
            blobs: dict[str, tuple[bytes | None, Path | None]] = {
                config_digest: (config_blob, None),
                manifest_digest: (manifest_blob, None),
            }
            for digest, path in layer_files:
                blobs.setdefault(digest, (None, path))  # two equal layers: one blob
            for digest in sorted(blobs):
                data, path = blobs[digest]
                member = "blobs/sha256/" + digest.removeprefix("sha256:")
                if data is not None:
                    add_bytes(member, data)
                else:
                    assert path is not None
                    info = tarinfo(member, tarfile.REGTYPE, 0o644)
                    info.size = path.stat().st_size
                    with path.open("rb") as f:
                        tar.addfile(info, f)
        partial.replace(dest)
    return OciImage(dest, name, manifest_digest, config_digest, tuple(d for d, _ in layer_files))


def read_index_names(path: Path) -> list[str]:
    """The image names an OCI archive's ``index.json`` gives (containerd's annotation)."""
    with tarfile.open(path) as tar:
        member = tar.extractfile("index.json")
        if member is None:
            raise ValueError(f"{path}: index.json is not a file")
        index = json.loads(member.read())
    return [m.get("annotations", {}).get(ANNOTATION_CONTAINERD_NAME, "")
            for m in index.get("manifests", [])]
