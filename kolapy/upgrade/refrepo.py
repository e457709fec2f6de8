"""An upgrade target for an image: its ostree commit in an archive repo, plus a successor.

``successor_repo(image)`` exports the commit the qcow2 boots (from the image's
root partition, on the host: ``qemu-img convert`` to raw, ``debugfs rdump`` of
``/ostree/repo`` at the partition's offset, ``ostree pull-local`` into an
archive repo) and commits a successor on the same ref: version + 1 and one
added file (:data:`MARKER`).  The result is cached beside the image
(``<image dir>/upgrade-repo/``, built under a file lock, only when asked for).

The export keeps file ownership, so it runs as root (as the image build does).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from kolapy.errors import BadInputError, KolapyError

#: Where the successor commit adds its marker (content: the version and a newline).
MARKER = "/usr/lib/kolapy-upgrade/version"
REPO_DIR = "upgrade-repo"
INFO = "target.json"


class RefRepoError(KolapyError):
    """The image's commit could not be exported."""


@dataclass(frozen=True)
class UpgradeRepo:
    """An archive repo whose ``ref`` moves from ``parent_commit`` to ``target_commit``."""

    path: Path
    ref: str
    parent_commit: str
    parent_version: str
    target_commit: str
    target_version: str
    marker_path: str = MARKER


def next_version(version: str) -> str:
    """``version`` + 1: the trailing number incremented, else ``.1`` appended.

    >>> next_version("39.20240101.0"), next_version("bookworm-kolapy")
    ('39.20240101.1', 'bookworm-kolapy.1')
    """
    m = re.search(r"(\d+)$", version)
    if m is None:
        return f"{version}.1"
    return version[: m.start()] + str(int(m.group(1)) + 1)


def root_partition_offset(sfdisk_json: str) -> int:
    """Byte offset of the partition named ``root`` in ``sfdisk --json`` output."""
    table = json.loads(sfdisk_json)["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    for part in table["partitions"]:
        if part.get("name") == "root":
            return int(part["start"]) * sector
    raise RefRepoError("the image has no partition named 'root'")


def is_ostree_repo(path: Path) -> bool:
    """Whether ``path`` looks like an ostree repository (``config`` with ``[core]``, objects/)."""
    config = path / "config"
    try:
        return (path / "objects").is_dir() and "[core]" in config.read_text()
    except OSError:
        return False


def ostree(repo: Path, *args: str, timeout: float = 1800) -> str:
    """Run ``ostree --repo=<repo> ARGS`` on the host; its stdout."""
    proc = subprocess.run(
        ["ostree", f"--repo={repo}", *args], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RefRepoError(f"ostree {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def commit_version(repo: Path, rev: str) -> str:
    """The ``version`` metadata of ``rev`` in a host repo ('' if none)."""
    try:
        out = ostree(repo, "show", "--print-metadata-key=version", rev).strip()
    except RefRepoError:
        return ""
    return out[1:-1] if len(out) >= 2 and out[0] == out[-1] == "'" else out


def image_manifest(image: Path) -> dict[str, Any] | None:
    """The reference image's manifest (beside the qcow2), or None for other images."""
    try:
        data: dict[str, Any] = json.loads((image.parent / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("image") == image.name else None


def run_image(config: Any) -> Path | None:
    """The image a pytest run tests: ``--nestos-image``, else the cached reference image."""
    from kolapy.config import RunConfig
    from kolapy.refimage import image_path

    cfg = RunConfig.from_options(lambda dest, default: config.getoption(dest, default))
    return cfg.image or image_path(cfg.arch)


def image_commit(config: Any) -> str | None:
    """The ostree commit of the reference image a pytest run tests, if it is one."""
    image = run_image(config)
    manifest = image_manifest(image) if image else None
    return str(manifest["ostree_commit"]) if manifest else None


def successor_repo(image: Path) -> UpgradeRepo:
    """The cached upgrade repo for the reference image ``image`` (built on first use)."""
    manifest = image_manifest(image)
    if manifest is None:
        raise BadInputError(
            f"{image}: not a kolapy reference image (no manifest.json beside it); "
            "give --upgrade-repo and --upgrade-ref"
        )
    entry = image.parent
    with FileLock(str(entry / f"{REPO_DIR}.lock"), timeout=3600):
        info = entry / REPO_DIR / INFO
        if not info.is_file():
            _build(image, manifest, entry / REPO_DIR)
        data = json.loads(info.read_text())
    return UpgradeRepo(path=entry / REPO_DIR / "repo", **data)


def _build(image: Path, manifest: dict[str, Any], dest: Path) -> None:
    for tool in ("qemu-img", "sfdisk", "debugfs", "ostree"):
        if shutil.which(tool) is None:
            raise BadInputError(f"{tool} is needed to export the image's ostree commit")
    ref, parent = str(manifest["ostree_ref"]), str(manifest["ostree_commit"])
    shutil.rmtree(dest, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=".upgrade-", dir=dest.parent))
    try:
        raw = work / "disk.raw"
        _check(["qemu-img", "convert", "-O", "raw", str(image), str(raw)])
        offset = root_partition_offset(_check(["sfdisk", "--json", str(raw)]))
        bare = work / "bare"
        bare.mkdir()
        _check(["debugfs", "-R", f"rdump /ostree/repo {bare}", f"{raw}?offset={offset}"])
        raw.unlink()
        repo = work / "out" / "repo"
        repo.mkdir(parents=True)
        ostree(repo, "init", "--mode=archive")
        ostree(repo, "pull-local", str(bare / "repo"), parent)
        ostree(repo, "refs", "--create", ref, parent)
        parent_version = commit_version(repo, parent)
        target_version = next_version(parent_version or "0")
        extra = work / "extra"
        marker = extra / MARKER.lstrip("/")
        marker.parent.mkdir(parents=True)
        marker.write_text(f"{target_version}\n")
        target = ostree(
            repo, "commit", f"--branch={ref}", f"--tree=ref={parent}", f"--tree=dir={extra}",
            f"--add-metadata-string=version={target_version}",
            "--subject=kolapy upgrade target",
        ).strip()
        ostree(repo, "summary", "--update")
        info = dict(ref=ref, parent_commit=parent, parent_version=parent_version,
                    target_commit=target, target_version=target_version)
        (work / "out" / INFO).write_text(json.dumps(info, indent=2) + "\n")
        (work / "out").rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RefRepoError(f"{' '.join(argv)} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout
