"""Unit tests of the OCI archive writer and the root-file closure (no VM, no Go build).

Where containerd is built (``python -m kolapy.k8s.build``), a private containerd
(own root, state and socket under tmp) imports an archive with the built ``ctr``
exactly as the K8S recipe's ``load-images`` unit does, and lists it by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from kolapy.containers.oci import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    MEDIA_LAYER,
    MEDIA_MANIFEST,
    Entry,
    ImageConfig,
    read_index_names,
    split_reference,
    with_parents,
    write_oci_archive,
)
from kolapy.containers.rootfiles import RootFileError, closure, elf_dependencies
from kolapy.enums import Arch

NAME = "registry.k8s.io/kolapy-test:v1.2.3"


def _members(path: Path) -> dict[str, bytes]:
    out = {}
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m)
            out[m.name] = f.read() if f else b""
    return out


def _blob(members: dict[str, bytes], digest: str) -> bytes:
    return members["blobs/sha256/" + digest.removeprefix("sha256:")]


def test_archive_is_an_oci_layout_with_matching_digests(tmp_path: Path) -> None:
    payload = tmp_path / "tool"
    payload.write_bytes(b"#!/bin/sh\necho hi\n")
    entries = [
        Entry("/usr/local/bin/tool", source=payload, mode=0o755),
        Entry("/etc/passwd", data=b"root:x:0:0::/:/bin/sh\n"),
        Entry("/tmp", kind="dir", mode=0o1777),
        Entry("/bin", kind="symlink", target="usr/local/bin"),
    ]
    config = ImageConfig(entrypoint=("/usr/local/bin/tool",), user="65535:65535")
    oci = write_oci_archive(tmp_path / "out/img.tar", NAME, Arch.X86_64, [entries], config)
    members = _members(oci.path)
    assert json.loads(members["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(members["index.json"])
    (desc,) = index["manifests"]
    assert desc["mediaType"] == MEDIA_MANIFEST
    assert desc["annotations"] == {ANNOTATION_CONTAINERD_NAME: NAME, ANNOTATION_REF_NAME: "v1.2.3"}
    assert desc["platform"] == {"architecture": "amd64", "os": "linux"}
    manifest_blob = _blob(members, desc["digest"])
    assert desc["digest"] == oci.manifest_digest == \
        "sha256:" + hashlib.sha256(manifest_blob).hexdigest()
    assert desc["size"] == len(manifest_blob)
    manifest = json.loads(manifest_blob)
    config_blob = _blob(members, manifest["config"]["digest"])
    assert oci.config_digest == "sha256:" + hashlib.sha256(config_blob).hexdigest()
    image_config = json.loads(config_blob)
    assert image_config["architecture"] == "amd64" and image_config["os"] == "linux"
    assert image_config["config"]["Entrypoint"] == ["/usr/local/bin/tool"]
    assert image_config["config"]["User"] == "65535:65535"
    (layer_desc,) = manifest["layers"]
    assert layer_desc["mediaType"] == MEDIA_LAYER
    layer = _blob(members, layer_desc["digest"])
    digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    # an uncompressed layer: its digest is its diff id
    assert layer_desc["digest"] == digest and image_config["rootfs"]["diff_ids"] == [digest]
    assert layer_desc["size"] == len(layer)
    layer_path = tmp_path / "layer.tar"
    layer_path.write_bytes(layer)
    with tarfile.open(layer_path) as tar:
        info = {m.name: m for m in tar.getmembers()}
        assert list(info) == sorted(info)  # parents first, deterministic order
        assert {"usr", "usr/local", "usr/local/bin", "etc"} <= set(info)
        tool = info["usr/local/bin/tool"]
        assert tool.mode == 0o755 and tool.uid == 0 and tool.mtime == 0
        assert tar.extractfile(tool).read() == payload.read_bytes()  # type: ignore[union-attr]
        assert info["tmp"].isdir() and info["tmp"].mode == 0o1777
        assert info["bin"].issym() and info["bin"].linkname == "usr/local/bin"
    assert read_index_names(oci.path) == [NAME]
    assert not list((tmp_path / "out").glob(".oci-*"))  # its work dir is gone


def test_archive_is_deterministic(tmp_path: Path) -> None:
    entries = [Entry("/a", data=b"x")]
    one = write_oci_archive(tmp_path / "1.tar", NAME, Arch.AARCH64, [entries])
    two = write_oci_archive(tmp_path / "2.tar", NAME, Arch.AARCH64, [entries])
    assert one.path.read_bytes() == two.path.read_bytes()
    assert one.manifest_digest == two.manifest_digest


@pytest.mark.parametrize("bad", ["registry.k8s.io/pause", "pause:", "host:5000/pause"])
def test_a_reference_needs_a_tag(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no tag"):
        write_oci_archive(tmp_path / "x.tar", bad, Arch.X86_64, [[Entry("/a", data=b"")]])


def test_split_reference_keeps_a_registry_port() -> None:
    assert split_reference("host:5000/pause:3.10") == ("host:5000/pause", "3.10")


def test_bad_entries_are_refused() -> None:
    with pytest.raises(ValueError, match="exactly one of source or data"):
        Entry("/a")
    with pytest.raises(ValueError, match="needs a target"):
        Entry("/a", kind="symlink")
    with pytest.raises(ValueError, match="given twice"):
        with_parents([Entry("/a", data=b""), Entry("a", data=b"")])


def test_closure_follows_links_and_libraries_of_the_hosts_iptables() -> None:
    """The host is Debian with iptables (kolapy's setup): the same layout as the image."""
    if not Path("/usr/sbin/xtables-nft-multi").exists():
        pytest.skip("no Debian iptables on this host")
    entries = {e.name: e for e in closure(Path("/"), ["/usr/sbin/iptables"], Arch.X86_64)}
    assert entries["usr/sbin/iptables"].kind == "symlink"
    assert entries["usr/sbin/xtables-nft-multi"].kind == "file"
    assert entries["usr/sbin/xtables-nft-multi"].mode & 0o111
    interp, needed = elf_dependencies(Path("/usr/sbin/xtables-nft-multi").read_bytes())
    assert interp == "/lib64/ld-linux-x86-64.so.2" and "libc.so.6" in needed
    assert entries["lib64"].kind == "symlink"  # merged /usr: the link itself is kept
    libs = {Path(n).name for n, e in entries.items() if e.kind == "file"}
    assert {"libc.so.6", "ld-linux-x86-64.so.2"} <= libs
    assert any(name.startswith("libxtables.so") for name in libs)


def test_closure_of_a_fake_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/sbin").mkdir(parents=True)
    (root / "etc/alternatives").mkdir(parents=True)
    (root / "usr/sbin/tool-real").write_text("not an ELF file\n")
    os.symlink("/etc/alternatives/tool", root / "usr/sbin/tool")
    os.symlink("/usr/sbin/tool-real", root / "etc/alternatives/tool")
    got = {e.name: (e.kind, e.target) for e in closure(root, ["/usr/sbin/tool"], Arch.X86_64)}
    assert got == {
        "etc/alternatives/tool": ("symlink", "/usr/sbin/tool-real"),
        "usr/sbin/tool": ("symlink", "/etc/alternatives/tool"),
        "usr/sbin/tool-real": ("file", ""),
    }
    os.symlink("loop", root / "usr/sbin/loop")
    with pytest.raises(RootFileError, match="too many symlinks"):
        closure(root, ["/usr/sbin/loop"], Arch.X86_64)
    with pytest.raises(RootFileError, match="not in the root"):
        closure(root, ["/usr/sbin/missing"], Arch.X86_64)


def _ctr(bin_dir: Path, sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / "ctr"), "--address", str(sock), "--namespace", "k8s.io",
                           *args], capture_output=True, text=True, timeout=120)


def test_built_ctr_imports_the_archive(tmp_path: Path) -> None:
    from kolapy.k8s.build import cached_bin_dir

    bin_dir = cached_bin_dir()
    if bin_dir is None:
        pytest.skip("containerd not built here (python -m kolapy.k8s.build)")
    if os.geteuid() != 0:
        pytest.skip("containerd needs root")
    busybox = shutil.which("busybox")
    entries = [Entry("/pause", source=bin_dir / "pause", mode=0o755)]
    if busybox:
        entries.append(Entry("/bin/busybox", source=Path(busybox), mode=0o755))
    oci = write_oci_archive(tmp_path / "pause.tar", NAME, Arch.X86_64, [entries],
                            ImageConfig(entrypoint=("/pause",)))
    # a short socket path: unix sockets have a 108-byte limit
    run_dir = Path(f"/tmp/kolapy-ctr-{os.getpid()}")
    run_dir.mkdir()
    sock = run_dir / "c.sock"
    config = tmp_path / "config.toml"
    config.write_text("version = 4\n")
    daemon = subprocess.Popen(
        [str(bin_dir / "containerd"), "-c", str(config), "--root", str(tmp_path / "root"),
         "--state", str(run_dir / "state"), "--address", str(sock)],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "containerd.log").open("w"),
    )
    try:
        deadline = time.monotonic() + 60
        while _ctr(bin_dir, sock, "version").returncode != 0:
            assert daemon.poll() is None, (tmp_path / "containerd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "containerd did not answer in 60 s"
            time.sleep(0.5)
        imported = _ctr(bin_dir, sock, "images", "import", "--local", str(oci.path))
        assert imported.returncode == 0, imported.stderr
        listed = _ctr(bin_dir, sock, "images", "ls")
        assert listed.returncode == 0, listed.stderr
        (line,) = [ln for ln in listed.stdout.splitlines() if ln.startswith(NAME + " ")]
        assert oci.manifest_digest in line
        check = _ctr(bin_dir, sock, "images", "check")
        assert "complete" in check.stdout, check.stdout
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        subprocess.run(["umount", "-R", str(tmp_path / "root")], capture_output=True)
        shutil.rmtree(run_dir, ignore_errors=True)
