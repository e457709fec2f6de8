"""The kolapy reference image: a NestOS-like ostree + Ignition qcow2 built from Debian 12.

``build_image()`` runs mmdebstrap, makes an ostree commit and deployment, and
writes a GRUB-booted (BIOS and UEFI) qcow2 into the cache, keyed by the recipe
hash; ``image_path()`` finds a built one.  See docs/refimage.md.
"""

from __future__ import annotations

from kolapy.refimage.build import build_image, ensure_image
from kolapy.refimage.cache import cache_root, image_path, read_manifest

__all__ = ["build_image", "cache_root", "ensure_image", "image_path", "read_manifest"]
