"""The control-plane images kubeadm deploys, made locally as OCI archives.

kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, etcd,
CoreDNS and pause, each one layer holding the binary built by
:mod:`kolapy.k8s.build` where the upstream image has it (``/usr/local/bin/<cmd>``;
``/coredns`` and ``/pause`` as entrypoints), plus ``/etc/passwd``,
``/etc/group`` and ``/tmp``.  kube-proxy's iptables mode runs ``iptables``,
``iptables-save`` and ``iptables-restore`` (and the ip6tables ones): its image
also gets Debian's iptables (nft backend, as on the node), its extension
modules and their libraries, taken from the node image's own root
(:func:`kolapy.containers.rootfiles.closure`).

Names and tags are what ``kubeadm config images list`` gives for the image
repository (checked by tests/unit/test_k8s_images.py against the recipe and,
where the binaries are built, against kubeadm itself).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kolapy.containers.oci import Entry, ImageConfig, OciImage, write_oci_archive
from kolapy.containers.rootfiles import TRIPLET, closure
from kolapy.enums import Arch
from kolapy.k8s.versions import PINS, Pins

DEFAULT_REPOSITORY = "registry.k8s.io"
IPTABLES_COMMANDS = tuple(
    f"/usr/sbin/{family}{suffix}"
    for family in ("iptables", "ip6tables")
    for suffix in ("", "-save", "-restore")
)
PASSWD = (
    b"root:x:0:0:root:/root:/sbin/nologin\n"
    b"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
)
GROUP = b"root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
NSSWITCH = b"hosts: files dns\n"

Say = Callable[[str], None]


@dataclass(frozen=True)
class ControlPlaneImage:
    """One image: its short name, the built binaries it holds (path in image -> binary)."""

    component: str
    binaries: tuple[tuple[str, str], ...]
    config: ImageConfig
    needs_iptables: bool = False

    def reference(self, repository: str = DEFAULT_REPOSITORY, pins: Pins = PINS) -> str:
        """The image name kubeadm uses for this component."""
        tag = {
            "etcd": pins.etcd_image_tag,
            "coredns": pins.coredns,
            "pause": pins.pause,
        }.get(self.component, pins.kubernetes)
        path = "coredns/coredns" if self.component == "coredns" else self.component
        return f"{repository}/{path}:{tag}"

    @property
    def archive_name(self) -> str:
        return f"{self.component}.tar"


def _local_bin(*commands: str) -> tuple[tuple[str, str], ...]:
    return tuple((f"/usr/local/bin/{cmd}", cmd) for cmd in commands)


IMAGES: tuple[ControlPlaneImage, ...] = (
    ControlPlaneImage("kube-apiserver", _local_bin("kube-apiserver"), ImageConfig()),
    ControlPlaneImage("kube-controller-manager", _local_bin("kube-controller-manager"),
                      ImageConfig()),
    ControlPlaneImage("kube-scheduler", _local_bin("kube-scheduler"), ImageConfig()),
    ControlPlaneImage("kube-proxy", _local_bin("kube-proxy"), ImageConfig(),
                      needs_iptables=True),
    ControlPlaneImage("coredns", (("/coredns", "coredns"),),
                      ImageConfig(entrypoint=("/coredns",))),
    ControlPlaneImage("pause", (("/pause", "pause"),),
                      ImageConfig(entrypoint=("/pause",), user="65535:65535")),
    ControlPlaneImage("etcd", _local_bin("etcd", "etcdctl"), ImageConfig()),
)


def image_references(repository: str = DEFAULT_REPOSITORY, pins: Pins = PINS) -> list[str]:
    """Every image's name, in the order of :data:`IMAGES`."""
    return [image.reference(repository, pins) for image in IMAGES]


def base_entries() -> list[Entry]:
    """What every image has besides its binaries."""
    return [
        Entry("/etc/passwd", data=PASSWD),
        Entry("/etc/group", data=GROUP),
        Entry("/etc/nsswitch.conf", data=NSSWITCH),
        Entry("/tmp", kind="dir", mode=0o1777),
        Entry("/root", kind="dir", mode=0o700),
        Entry("/var/run", kind="symlink", target="../run"),
        Entry("/run", kind="dir", mode=0o755),
    ]


def iptables_entries(root: Path, arch: Arch) -> list[Entry]:
    """Debian's iptables commands of ``root``, their extension modules and libraries."""
    xtables = root / "usr/lib" / TRIPLET[Arch(arch)] / "xtables"
    modules = sorted(f"/{p.relative_to(root)}" for p in xtables.glob("*.so"))
    if not modules:
        raise FileNotFoundError(f"no iptables extension modules in {xtables}")
    return closure(root, [*IPTABLES_COMMANDS, *modules], arch)


def image_entries(image: ControlPlaneImage, bin_dir: Path, root: Path | None,
                  arch: Arch) -> list[Entry]:
    """The one layer of ``image``: base files, its binaries, iptables if it needs them."""
    entries = base_entries()
    entries += [Entry(path, source=bin_dir / binary, mode=0o755) for path, binary in image.binaries]
    if image.needs_iptables:
        if root is None:
            raise ValueError(f"{image.component} needs iptables from a root file system")
        entries += iptables_entries(root, arch)
    return entries


def write_images(
    bin_dir: Path,
    root: Path | None,
    arch: Arch,
    out_dir: Path,
    repository: str = DEFAULT_REPOSITORY,
    pins: Pins = PINS,
    say: Say | None = None,
) -> list[OciImage]:
    """Write every control-plane image's OCI archive into ``out_dir``.

    ``bin_dir`` holds the built binaries; ``root`` is the node's root file
    system (kube-proxy's iptables come from it).
    """
    written = []
    for image in IMAGES:
        name = image.reference(repository, pins)
        oci = write_oci_archive(
            out_dir / image.archive_name, name, arch,
            [image_entries(image, bin_dir, root, arch)], image.config,
            created_by=f"kolapy k8s variant: {image.component} built from its Go module",
        )
        if say is not None:
            size = oci.path.stat().st_size / 2**20
            say(f"  image {name}: {oci.path.name}, {size:.0f} MiB")
        written.append(oci)
    return written
