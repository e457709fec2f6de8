"""What the reference image is made of, per architecture, and its hash.

The recipe hash names the cache entry: it covers the package list, the arch
parameters, the builder's own sources and every file shipped into the image, so
any change to how the image is made yields a new cache entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from kolapy.enums import Arch
from kolapy.errors import BadInputError

HERE = Path(__file__).resolve().parent
FILES_DIR = HERE / "files"

SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)

# Packages on top of mmdebstrap's minbase variant (NestOS-like contents).
COMMON_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "kmod",
    "procps",
    "less",
    "dracut",
    "ignition",
    "ostree",
    "ostree-boot",
    "openssh-server",
    "sudo",
    "jq",
    "libglib2.0-bin",  # gdbus: kola's basic D-Bus check runs it (NestOS has it)
    "iproute2",
    "iputils-ping",
    "libnss-myhostname",
    "ca-certificates",
    "fdisk",
    "e2fsprogs",
    "zstd",
    "podman",
    "crun",
    "catatonit",
    "containernetworking-plugins",
    "slirp4netns",
    "uidmap",
    "docker.io",
    "busybox-static",
    "etcd-server",  # etcd.cluster (Debian 3.4; disabled until a test's Ignition enables it)
    "etcd-client",  # etcdctl
)


@dataclass(frozen=True)
class Recipe:
    """Everything that decides what gets built for one architecture."""

    arch: Arch
    kernel_package: str
    grub_platforms: tuple[str, ...]  # host GRUB module dirs, BIOS first if any
    efi_boot_file: str  # removable-media path name on the ESP
    console: str  # kernel console for the serial log
    # GRUB modules come from the image's own grub-*-bin package, not the host
    # (Debian has no grub-efi-arm64-bin for amd64 hosts).
    grub_from_image: bool = False
    packages: tuple[str, ...] = COMMON_PACKAGES
    suite: str = SUITE
    mirrors: tuple[str, ...] = MIRRORS
    osname: str = "debian"
    disk_mib: int = 4096
    esp_mib: int = 64
    boot_mib: int = 384
    variant: str = ""  # "": the reference image; else a key of VARIANTS

    @property
    def all_packages(self) -> tuple[str, ...]:
        return (self.kernel_package, *self.packages)

    @property
    def ostree_ref(self) -> str:
        return f"kolapy/{self.arch.value}/ref"

    @property
    def image_name(self) -> str:
        if self.variant:
            return f"ref-{self.variant}-{self.arch.value}.qcow2"
        return f"ref-{self.arch.value}.qcow2"


RECIPES: dict[Arch, Recipe] = {
    Arch.X86_64: Recipe(
        arch=Arch.X86_64,
        kernel_package="linux-image-cloud-amd64",
        grub_platforms=("i386-pc", "x86_64-efi"),
        efi_boot_file="BOOTX64.EFI",
        console="ttyS0,115200",
    ),
    Arch.AARCH64: Recipe(
        arch=Arch.AARCH64,
        kernel_package="linux-image-cloud-arm64",
        grub_platforms=("arm64-efi",),
        efi_boot_file="BOOTAA64.EFI",
        console="ttyAMA0,115200",
        packages=(*COMMON_PACKAGES, "grub-efi-arm64-bin"),
        grub_from_image=True,
    ),
}


# Variants: the reference image plus something, built by a module outside this package
# (so changing a variant never re-keys the reference image).  The module provides
# PACKAGES, DISK_MIB, fingerprint(arch), prepare(arch, say) and
# install(root, prepared, arch, log, say) -> manifest info.
VARIANTS = {"k8s": "kolapy.k8s.variant"}


def variant_module(variant: str) -> ModuleType:
    """The module that builds ``variant`` (BadInputError naming it if unknown)."""
    if variant not in VARIANTS:
        raise BadInputError(
            f"image variant {variant!r}: expected one of {', '.join(sorted(VARIANTS))}"
        )
    return importlib.import_module(VARIANTS[variant])


def recipe_for(arch: Arch, variant: str = "") -> Recipe:
    """The recipe for ``arch`` (and ``variant``: "" is the reference image itself)."""
    base = RECIPES[Arch(arch)]
    if not variant:
        return base
    module = variant_module(variant)
    return dataclasses.replace(
        base,
        variant=variant,
        packages=(*base.packages, *(p for p in module.PACKAGES if p not in base.packages)),
        disk_mib=max(base.disk_mib, module.DISK_MIB),
    )


def _source_files() -> list[Path]:
    files = [p for p in HERE.glob("*.py")]
    files += [p for p in FILES_DIR.rglob("*") if p.is_file() or p.is_symlink()]
    return sorted(p for p in files if "__pycache__" not in p.parts)


def recipe_hash(recipe: Recipe) -> str:
    """A short stable hash of ``recipe`` plus the builder's sources and shipped files."""
    h = hashlib.sha256()
    fields = dataclasses.asdict(recipe)
    h.update(json.dumps(fields, sort_keys=True, default=str).encode())
    for path in _source_files():
        h.update(str(path.relative_to(HERE)).encode() + b"\0")
        if path.is_symlink():
            h.update(b"link:" + str(path.readlink()).encode())
        else:
            h.update(path.read_bytes())
        # The executable bit changes what the image contains.
        h.update(b"x" if path.stat().st_mode & 0o111 else b"-")
    if recipe.variant:
        h.update(b"variant\0" + variant_module(recipe.variant).fingerprint(recipe.arch).encode())
    return h.hexdigest()[:16]
