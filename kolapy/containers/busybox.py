"""A static busybox binary for a guest architecture, and the test image built from it.

x86_64 on an x86_64 host: the host's own ``busybox-static`` (``/bin/busybox``).
Any other case: Debian's ``busybox-static`` .deb for that architecture, fetched with
``apt-get download`` under a private apt configuration (the host's apt state is not
touched) and unpacked with ``dpkg-deb -x``.  Everything is cached under
``<kolapy cache>/containers/<arch>/`` and built under a file lock, so parallel
workers build it once.

A user's own image: ``KOLAPY_CONTAINER_IMAGE_<ARCH>`` (e.g. ``_AARCH64``) or
``KOLAPY_CONTAINER_IMAGE`` names a docker-archive to use instead (docs/containers.md).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from filelock import FileLock

from kolapy.containers import archive as archive_module
from kolapy.containers.archive import ImageArchive, build_archive, read_archive
from kolapy.enums import Arch
from kolapy.errors import BadInputError, InfraError
from kolapy.refimage.cache import cache_root

HOST_BUSYBOX = (Path("/bin/busybox"), Path("/usr/bin/busybox"))
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITE = "bookworm"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

#: ELF e_machine of each architecture.
ELF_MACHINE = {Arch.X86_64: 62, Arch.AARCH64: 183}
_PT_INTERP = 3


def env_image(arch: Arch) -> Path | None:
    """The user's own image archive for ``arch`` from the environment, if set."""
    value = (os.environ.get(f"KOLAPY_CONTAINER_IMAGE_{Arch(arch).value.upper()}")
             or os.environ.get("KOLAPY_CONTAINER_IMAGE"))
    return Path(value) if value else None


def elf_info(blob: bytes) -> tuple[int, bool]:
    """(e_machine, statically linked) of a 64-bit little-endian ELF executable."""
    if blob[:4] != b"\x7fELF" or blob[4] != 2 or blob[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    machine = struct.unpack_from("<H", blob, 18)[0]
    phoff = struct.unpack_from("<Q", blob, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", blob, 54)
    interp = any(
        struct.unpack_from("<I", blob, phoff + i * phentsize)[0] == _PT_INTERP
        for i in range(phnum)
    )
    return machine, not interp


def is_static_for(blob: bytes, arch: Arch) -> bool:
    """True when ``blob`` is a static ELF executable for ``arch``."""
    try:
        machine, static = elf_info(blob)
    except (ValueError, struct.error):
        return False
    return static and machine == ELF_MACHINE[Arch(arch)]


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise InfraError(f"{what}: `{' '.join(argv)}` exited {proc.returncode}: "
                         f"{(proc.stderr or proc.stdout).strip()[-1500:]}")


def download_busybox(arch: Arch, workdir: Path) -> bytes:
    """Debian's static busybox for ``arch``, fetched with a private apt configuration."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise BadInputError(
            f"a static busybox for {arch} is fetched with apt-get and dpkg-deb (Debian host); "
            "or set KOLAPY_CONTAINER_IMAGE to a docker-archive of your own"
        )
    deb_arch = Arch(arch).debian
    root = workdir / "apt"
    for d in ("lists/partial", "archives/partial", "etc/preferences.d", "etc/apt.conf.d"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "status").write_text("")
    (root / "etc/sources.list").write_text(
        f"deb [arch={deb_arch} signed-by={DEBIAN_KEYRING}] {DEBIAN_MIRROR} {DEBIAN_SUITE} main\n"
    )
    opts = [
        f"-oAPT::Architecture={deb_arch}", f"-oAPT::Architectures={deb_arch}",
        f"-oDir::Etc={root / 'etc'}", f"-oDir::Etc::SourceList={root / 'etc/sources.list'}",
        "-oDir::Etc::SourceParts=-", f"-oDir::State::Lists={root / 'lists'}",
        f"-oDir::State::status={root / 'status'}", f"-oDir::Cache={root}",
        f"-oDir::Cache::archives={root / 'archives'}", "-oAcquire::Languages=none",
        "-oDebug::NoLocking=1", "-qq",
    ]
    _run(["apt-get", *opts, "update"], f"apt-get update ({deb_arch})")
    debs = workdir / "debs"
    debs.mkdir(exist_ok=True)
    proc = subprocess.run(["apt-get", *opts, "download", f"busybox-static:{deb_arch}"],
                          cwd=debs, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise InfraError(f"apt-get download busybox-static:{deb_arch} exited "
                         f"{proc.returncode}: {proc.stderr.strip()[-1500:]}")
    (deb,) = debs.glob("busybox-static_*.deb")
    unpacked = workdir / "unpacked"
    _run(["dpkg-deb", "-x", str(deb), str(unpacked)], f"dpkg-deb -x {deb.name}")
    for candidate in ("bin/busybox", "usr/bin/busybox"):
        path = unpacked / candidate
        if path.is_file() and not path.is_symlink():
            return path.read_bytes()
    raise InfraError(f"{deb.name} holds no bin/busybox")


def busybox_for(arch: Arch, workdir: Path) -> bytes:
    """A static busybox for ``arch``: the host's when it fits, else Debian's package."""
    if Arch(arch) is Arch.host():
        for path in HOST_BUSYBOX:
            if path.is_file():
                blob = path.read_bytes()
                if is_static_for(blob, arch):
                    return blob
    blob = download_busybox(arch, workdir)
    if not is_static_for(blob, arch):
        raise InfraError(f"Debian's busybox-static for {arch} is not a static {arch} binary")
    return blob


def recipe_hash() -> str:
    """Digest of the image recipe (archive.py): a changed layout gets a new cache entry."""
    source = Path(archive_module.__file__).read_bytes()
    return hashlib.sha256(source).hexdigest()[:12]


def containers_cache(arch: Arch) -> Path:
    """``<kolapy cache>/containers/<arch>`` (created)."""
    path = cache_root() / "containers" / Arch(arch).value
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_image(arch: Arch) -> ImageArchive:
    """The test image for ``arch``: the user's archive if set, else the cached busybox one."""
    own = env_image(arch)
    if own is not None:
        if not own.is_file():
            raise BadInputError(f"KOLAPY_CONTAINER_IMAGE: {own} does not exist")
        try:
            return read_archive(own)
        except ValueError as exc:
            raise BadInputError(str(exc)) from exc
    cache = containers_cache(arch)
    dest = cache / f"busybox-{recipe_hash()}.tar"
    with FileLock(str(cache.parent / f"{Arch(arch).value}.lock"), timeout=900):
        if dest.is_file():
            return read_archive(dest)
        with tempfile.TemporaryDirectory(dir=cache, prefix=".build-") as tmp:
            blob = busybox_for(arch, Path(tmp))
            partial = Path(tmp) / "busybox.tar"
            archive = build_archive(blob, arch, partial)
            partial.replace(dest)
        return ImageArchive(path=dest, tag=archive.tag, image_id=archive.image_id)


# pytest must not collect the builder as a test when a test module imports it.
test_image.__test__ = False  # type: ignore[attr-defined]
