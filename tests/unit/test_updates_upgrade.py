"""run-upgrade's pure parts: versions, the root partition, option checks, the summary (no VM)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kolapy.errors import BadInputError
from kolapy.upgrade.refrepo import RefRepoError, is_ostree_repo, next_version, root_partition_offset
from kolapy.upgrade.run import summary
from kolapy.upgrade.target import check_options, is_url, resolve

SFDISK = {
    "partitiontable": {
        "label": "gpt", "sectorsize": 512,
        "partitions": [
            {"node": "d1", "start": 2048, "size": 2048, "name": "BIOS-BOOT"},
            {"node": "d3", "start": 135168, "size": 786432, "name": "boot"},
            {"node": "d4", "start": 921600, "size": 7464960, "name": "root"},
        ],
    }
}


@pytest.mark.parametrize(
    ("version", "successor"),
    [("bookworm-kolapy", "bookworm-kolapy.1"), ("39.20240101.0", "39.20240101.1"),
     ("22.03.20231201", "22.03.20231202"), ("v9", "v10")],
)
def test_next_version(version: str, successor: str) -> None:
    assert next_version(version) == successor


def test_root_partition_offset() -> None:
    assert root_partition_offset(json.dumps(SFDISK)) == 921600 * 512
    no_root = {"partitiontable": {"partitions": [{"start": 1, "name": "boot"}]}}
    with pytest.raises(RefRepoError, match="root"):
        root_partition_offset(json.dumps(no_root))


def _fake_repo(path: Path) -> Path:
    (path / "objects").mkdir(parents=True)
    (path / "config").write_text("[core]\nrepo_version=1\nmode=archive-z2\n")
    return path


def test_is_ostree_repo(tmp_path: Path) -> None:
    assert is_ostree_repo(_fake_repo(tmp_path / "repo"))
    assert not is_ostree_repo(tmp_path)
    (tmp_path / "config").write_text("not ini\n")
    (tmp_path / "objects").mkdir()
    assert not is_ostree_repo(tmp_path)


def test_check_options(tmp_path: Path) -> None:
    check_options(None, None)  # the reference image's own target
    check_options("http://10.0.2.2:8000/repo", "nestos/x86_64/stable")
    check_options(str(_fake_repo(tmp_path / "repo")), "ref")
    with pytest.raises(BadInputError, match="not an ostree repository"):
        check_options(str(tmp_path), "ref")
    with pytest.raises(BadInputError, match="no such directory"):
        check_options(str(tmp_path / "missing"), "ref")
    with pytest.raises(BadInputError, match="needs --upgrade-ref"):
        check_options(str(tmp_path / "repo"), None)
    with pytest.raises(BadInputError, match="needs --upgrade-repo"):
        check_options(None, "ref")
    assert is_url("https://x/repo") and not is_url("/srv/repo")


def test_resolve_url_is_used_as_is() -> None:
    target = resolve("http://10.0.2.100:8080/repo/", "a/b", Path("/nonexistent.qcow2"))
    assert target.url == "http://10.0.2.100:8080/repo" and target.directory is None
    assert target.expected_commit is None and target.where == target.url


@pytest.mark.skipif(subprocess.run(["which", "ostree"], capture_output=True).returncode != 0,
                    reason="the ostree CLI is not installed on this host")
def test_resolve_directory_reads_ref_and_version(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["ostree", f"--repo={repo}", "init", "--mode=archive"], check=True)
    tree = tmp_path / "tree" / "usr"
    tree.mkdir(parents=True)
    (tree / "f").write_text("x")
    commit = subprocess.run(
        ["ostree", f"--repo={repo}", "commit", "-b", "t/ref", "--add-metadata-string=version=7",
         f"--tree=dir={tree.parent}"], check=True, capture_output=True, text=True,
    ).stdout.strip()
    target = resolve(str(repo), "t/ref", Path("/nonexistent.qcow2"))
    assert target.expected_commit == commit and target.expected_version == "7"
    missing = resolve(str(repo), "no/such/ref", Path("/nonexistent.qcow2"))
    assert missing.expected_commit is None and missing.ref == "no/such/ref"


def test_summary(tmp_path: Path) -> None:
    path = tmp_path / "upgrade.json"
    assert "missing" in summary(path)
    path.write_text(json.dumps({
        "repo": "/r", "ref": "a/b", "reboots_s": [61.2, 70.0], "result": "PASS",
        "parent": {"commit": "c1", "version": "1"}, "target": {"commit": "c2", "version": "2"},
    }))
    text = summary(path)
    assert "parent: c1 version 1" in text and "target: c2 version 2" in text
    assert "reboots: 61 s, 70 s" in text and "result: PASS" in text


def test_run_upgrade_rejects_a_non_repo_before_booting(tmp_path: Path) -> None:
    """Bad input: exit 2 and the reason, fast (no image, no QEMU needed to get there)."""
    r = subprocess.run(
        [sys.executable, "-m", "kolapy.cli", "run-upgrade", f"--upgrade-repo={tmp_path}",
         "--upgrade-ref=x", f"--output-dir={tmp_path / 'out'}"],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert "not an ostree repository" in r.stderr
    assert not (tmp_path / "out").exists()
