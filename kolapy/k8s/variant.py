"""The K8S variant of the reference image: the reference image plus a Kubernetes node.

``kolapy image build --variant k8s`` builds the reference image with, on top:

- Debian packages kubeadm and the node need: ``runc`` (Debian's 1.1.5; the
  OCI runtime containerd's runc shim calls), ``containernetworking-plugins``
  (the bridge/host-local/portmap plugins of the recipe's CNI config),
  ``iptables``, ``conntrack``, ``ethtool``, ``socat`` (kubeadm's preflight
  and ``kubectl port-forward``);
- the binaries built from their Go modules (:mod:`kolapy.k8s.build`):
  ``kubeadm``, ``kubelet``, ``kubectl`` and containerd 2.x (``containerd``,
  ``containerd-shim-runc-v2``, ``ctr``) in ``/usr/bin``.  Debian's containerd
  1.6 (docker.io depends on it) is diverted aside with ``dpkg-divert``
  (``/usr/bin/containerd.debian`` ...), so dpkg knows; its unit
  (``ExecStart=/usr/bin/containerd``) starts the built one.  Kubernetes 1.36+
  needs containerd 2.x;
- the control-plane images as OCI archives in ``/usr/share/kolapy/k8s-images/``
  (:mod:`kolapy.k8s.images`), which the recipe's ``load-images`` unit imports
  with ``ctr -n k8s.io images import`` so kubeadm never pulls;
- ``/usr/share/kolapy/k8s.json``: the pins and image names, for tests;
- the kernel's config at ``/usr/lib/modules/<kver>/config`` (kubeadm's
  preflight reads it; ostree's ``/boot`` has none).

The image's recipe hash covers this module's and the image builders' sources
and the pins (:func:`fingerprint`), so a change to any of them is a new image.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kolapy.enums import Arch
from kolapy.k8s import build as k8s_build
from kolapy.k8s.recipe import IMAGE_ARCHIVE_DIR
from kolapy.k8s.versions import PINS, Pins

PACKAGES = ("runc", "containernetworking-plugins", "iptables", "conntrack", "ethtool", "socat")
NODE_COMMANDS = ("kubeadm", "kubelet", "kubectl")
CONTAINERD_COMMANDS = k8s_build.CONTAINERD_COMMANDS
DIVERTED_SUFFIX = ".debian"
DISK_MIB = 8192
"""The variant's virtual disk: ~1 GB of node binaries and images, and room for containerd
to unpack them again on the first boot."""
INFO_FILE = "/usr/share/kolapy/k8s.json"
CONTAINERD_UNIT = "/usr/lib/systemd/system/containerd.service"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
CONTAINERD_CONFIG_NOTE = (
    "# kolapy K8S variant: containerd 2.x (built); Debian's 1.6 config replaced.\n"
    "# The Kubernetes recipe (kolapy.k8s.recipe) writes the node's config here by Ignition.\n"
    "version = 4\n"
)

Say = Callable[[str], None]

# Sources whose change changes what this variant puts in the image.
_SOURCES = ("k8s/variant.py", "k8s/images.py", "k8s/build.py", "k8s/versions.py",
            "containers/oci.py", "containers/rootfiles.py")


def fingerprint(arch: Arch, pins: Pins = PINS) -> str:
    """What the image recipe hash adds for this variant: pins, build recipe, sources."""
    h = hashlib.sha256()
    h.update(json.dumps([pins.to_json(), k8s_build.RECIPE_VERSION, Arch(arch).value,
                         PACKAGES], sort_keys=True).encode())
    base = Path(__file__).resolve().parent.parent
    for rel in _SOURCES:
        h.update(rel.encode() + b"\0" + (base / rel).read_bytes())
    return h.hexdigest()[:16]


def prepare(arch: Arch, say: Say) -> Path:
    """The built node binaries for ``arch`` (builds them first: ~1 h on a small host)."""
    return k8s_build.build_node_binaries(PINS, Arch(arch), progress=say)


def _log_run(cmd: list[str], log: Path) -> None:
    with log.open("a") as f:
        f.write("+ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}); see {log}")


def divert(root: Path, path: str, log: Path) -> None:
    """Move a packaged file aside (``<path>.debian``) so dpkg knows ours replaces it."""
    if not (root / path.lstrip("/")).exists():
        return
    _log_run(["dpkg-divert", f"--root={root}", "--local", "--rename",
              "--divert", path + DIVERTED_SUFFIX, "--add", path], log)


def kernel_config(root: Path) -> None:
    """The kernel's config beside its modules (``/usr/lib/modules/<kver>/config``, as on
    Fedora CoreOS): ostree's ``/boot`` has none, and kubeadm's preflight reads it."""
    for config in sorted((root / "boot").glob("config-*")):
        modules = root / "usr/lib/modules" / config.name.removeprefix("config-")
        if modules.is_dir():
            shutil.copyfile(config, modules / "config")


def install(root: Path, bin_dir: Path, arch: Arch, log: Path, say: Say) -> dict[str, Any]:
    """Put the node into the root file system ``root`` (after its packages are installed).

    Returns what the image manifest records about it.
    """
    from kolapy.k8s.images import write_images

    usr_bin = root / "usr/bin"
    for cmd in CONTAINERD_COMMANDS:
        divert(root, f"/usr/bin/{cmd}", log)
    for cmd in (*NODE_COMMANDS, *CONTAINERD_COMMANDS):
        shutil.copyfile(bin_dir / cmd, usr_bin / cmd)
        (usr_bin / cmd).chmod(0o755)
    kernel_config(root)
    unit = root / CONTAINERD_UNIT.lstrip("/")
    if "ExecStart=/usr/bin/containerd\n" not in unit.read_text():
        raise RuntimeError(f"{CONTAINERD_UNIT} does not start /usr/bin/containerd")
    config = root / CONTAINERD_CONFIG.lstrip("/")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(CONTAINERD_CONFIG_NOTE)
    out_dir = root / IMAGE_ARCHIVE_DIR.lstrip("/")
    say(f"K8S node: {', '.join((*NODE_COMMANDS, *CONTAINERD_COMMANDS))} in /usr/bin; "
        f"control-plane images into {IMAGE_ARCHIVE_DIR}")
    images = write_images(bin_dir, root, arch, out_dir, say=say)
    info = {
        "pins": PINS.to_json(),
        "runc": "Debian's runc package",
        "binaries": [f"/usr/bin/{cmd}" for cmd in (*NODE_COMMANDS, *CONTAINERD_COMMANDS)],
        "images": {
            img.name: {"archive": f"{IMAGE_ARCHIVE_DIR}/{img.path.name}",
                       "config_digest": img.config_digest,
                       "size": img.path.stat().st_size}
            for img in images
        },
    }
    info_path = root / INFO_FILE.lstrip("/")
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    return info
