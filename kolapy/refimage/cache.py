"""Where built images live, and how a build gets there safely.

Layout: ``<cache_root>/images/<recipe-hash>/{ref-<arch>.qcow2, manifest.json}``.
A build happens in ``<cache_root>/images/.build-<hash>-<pid>-<token>/`` under
a file lock (``<hash>.lock``) and is published by renaming its output directory
into place, so readers see either nothing or a complete image.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import platformdirs
from filelock import FileLock

from kolapy.enums import Arch
from kolapy.pids import pid_alive
from kolapy.refimage.recipe import Recipe, recipe_for, recipe_hash

MANIFEST = "manifest.json"
BUILD_PREFIX = ".build-"


def cache_root() -> Path:
    """``$KOLAPY_CACHE_DIR``, else the user cache dir for kolapy."""
    env = os.environ.get("KOLAPY_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir("kolapy"))


def images_dir() -> Path:
    return cache_root() / "images"


def entry_dir(recipe: Recipe) -> Path:
    """The cache directory for ``recipe`` (it may not exist yet)."""
    return images_dir() / recipe_hash(recipe)


def image_path(arch: Arch = Arch.X86_64, variant: str = "") -> Path | None:
    """The cached qcow2 for ``arch`` (and ``variant``) if built, else None (never builds)."""
    recipe = recipe_for(arch, variant)
    entry = entry_dir(recipe)
    qcow2 = entry / recipe.image_name
    if qcow2.is_file() and (entry / MANIFEST).is_file():
        return qcow2.resolve()
    return None


def read_manifest(arch: Arch = Arch.X86_64, variant: str = "") -> dict[str, object] | None:
    """The manifest of the cached image for ``arch`` (and ``variant``), or None if not built."""
    path = image_path(arch, variant)
    if path is None:
        return None
    data: dict[str, object] = json.loads((path.parent / MANIFEST).read_text())
    return data


@contextlib.contextmanager
def build_lock(recipe: Recipe, timeout: float = 3600) -> Iterator[None]:
    """Hold the per-recipe build lock (other builders of the same recipe wait)."""
    images_dir().mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(images_dir() / f"{recipe_hash(recipe)}.lock"), timeout=timeout)
    with lock:
        yield


def remove_tree(path: Path) -> None:
    """Delete ``path`` even when it holds immutable ostree deployments."""
    if not path.exists() and not path.is_symlink():
        return
    # ostree marks deployment roots immutable (FACTS 9).
    for deploy in path.glob("**/ostree/deploy/*/deploy/*.0"):
        subprocess.run(["chattr", "-i", str(deploy)], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        subprocess.run(["chattr", "-R", "-i", str(path)], capture_output=True, check=False)
        shutil.rmtree(path)


def remove_stale_work_dirs(recipe: Recipe) -> None:
    """Delete work dirs of this recipe left by builders that died (call under the lock)."""
    prefix = f"{BUILD_PREFIX}{recipe_hash(recipe)}-"
    for work in images_dir().glob(f"{prefix}*"):
        try:
            pid = int(work.name[len(prefix) :].split("-", 1)[0])
        except ValueError:
            continue
        if not pid_alive(pid):
            remove_tree(work)


def new_work_dir(recipe: Recipe) -> Path:
    """A fresh work directory beside the cache entry (same file system: atomic rename)."""
    work = images_dir() / (
        f"{BUILD_PREFIX}{recipe_hash(recipe)}-{os.getpid()}-{secrets.token_hex(4)}"
    )
    work.mkdir(parents=True)
    return work


def publish(out_dir: Path, recipe: Recipe) -> Path:
    """Atomically move a finished ``out_dir`` into the cache entry; return the qcow2 path.

    An existing entry (a forced rebuild) is first renamed aside, then deleted.
    """
    entry = entry_dir(recipe)
    if not (out_dir / recipe.image_name).is_file() or not (out_dir / MANIFEST).is_file():
        raise FileNotFoundError(f"{out_dir} lacks {recipe.image_name} or {MANIFEST}")
    old: Path | None = None
    if entry.exists():
        old = entry.with_name(f"{BUILD_PREFIX}{entry.name}-{os.getpid()}-old")
        os.rename(entry, old)
    os.rename(out_dir, entry)
    if old is not None:
        remove_tree(old)
    return (entry / recipe.image_name).resolve()
