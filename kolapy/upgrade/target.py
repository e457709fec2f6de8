"""Where ``run-upgrade`` upgrades to: ``--upgrade-repo DIR|URL`` + ``--upgrade-ref``,
or (reference image, no repo given) the successor repo kolapy builds itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kolapy.errors import BadInputError
from kolapy.upgrade.refrepo import commit_version, is_ostree_repo, ostree, successor_repo


@dataclass(frozen=True)
class UpgradeTarget:
    """An ostree repo (a host directory served over HTTP, or a URL) and the ref to go to."""

    ref: str
    directory: Path | None = None
    url: str | None = None
    expected_commit: str | None = None
    """Known on the host for a directory (None for a URL, or when the ref is missing)."""
    expected_version: str | None = None
    marker: tuple[str, str] | None = None
    """(path, text) a kolapy-made target adds under /usr."""

    @property
    def where(self) -> str:
        return str(self.directory) if self.directory is not None else str(self.url)


def is_url(repo: str) -> bool:
    """Whether ``--upgrade-repo`` names a URL rather than a directory."""
    return repo.startswith(("http://", "https://"))


def check_options(repo: str | None, ref: str | None) -> None:
    """Reject bad ``--upgrade-repo``/``--upgrade-ref`` values (BadInputError) before any boot."""
    if repo is None:
        if ref:
            raise BadInputError("--upgrade-ref needs --upgrade-repo")
        return
    if not ref:
        raise BadInputError(f"--upgrade-repo {repo} needs --upgrade-ref (the ref to upgrade to)")
    if is_url(repo):
        return
    path = Path(repo).expanduser()
    if not path.is_dir():
        raise BadInputError(f"--upgrade-repo {repo}: no such directory (or give an http(s) URL)")
    if not is_ostree_repo(path):
        raise BadInputError(f"--upgrade-repo {repo}: not an ostree repository (no config/objects)")


def resolve(repo: str | None, ref: str | None, image: Path) -> UpgradeTarget:
    """The target for these options; with no repo, the reference image's successor repo."""
    check_options(repo, ref)
    if repo is None:
        made = successor_repo(image)
        return UpgradeTarget(
            ref=made.ref, directory=made.path, expected_commit=made.target_commit,
            expected_version=made.target_version,
            marker=(made.marker_path, f"{made.target_version}\n"),
        )
    assert ref is not None
    if is_url(repo):
        return UpgradeTarget(ref=ref, url=repo.rstrip("/"))
    path = Path(repo).expanduser().absolute()
    try:
        commit = ostree(path, "rev-parse", ref).strip()
    except Exception:
        return UpgradeTarget(ref=ref, directory=path)  # the test fails naming the ref
    return UpgradeTarget(ref=ref, directory=path, expected_commit=commit,
                         expected_version=commit_version(path, commit) or None)
