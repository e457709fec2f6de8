"""Unit tests of the K8S variant of the reference image (no VM, no Go build, no mmdebstrap).

The variant's recipe (packages, name, disk, hash), the control-plane images'
names against the recipe (and, where the binaries are built, against kubeadm
itself), the images' contents, and what ``install`` puts into a root file system.
The default CI never builds the variant: nothing here calls mmdebstrap or Go.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from kolapy.cli import main as cli_main
from kolapy.containers.oci import read_index_names, write_oci_archive
from kolapy.enums import Arch
from kolapy.errors import BadInputError
from kolapy.k8s import images, variant
from kolapy.k8s.recipe import IMAGE_ARCHIVE_DIR, K8sCluster, Node
from kolapy.k8s.versions import PINS, Pins
from kolapy.refimage import recipe

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_CACHE = os.environ.get("KOLAPY_CACHE_DIR")  # where a real node build would be


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("KOLAPY_CACHE_DIR", str(root))
    return root


def test_variant_recipe_is_the_reference_image_plus_the_node_packages() -> None:
    for arch in Arch:
        base = recipe.recipe_for(arch)
        k8s = recipe.recipe_for(arch, "k8s")
        assert base.variant == "" and k8s.variant == "k8s"
        assert k8s.all_packages[: len(base.all_packages)] == base.all_packages
        assert set(k8s.packages) == set(base.packages) | set(variant.PACKAGES)
        assert len(k8s.packages) == len(set(k8s.packages))  # no package twice
        for pkg in ("runc", "containernetworking-plugins", "iptables", "conntrack", "ethtool",
                    "socat"):
            assert pkg in k8s.packages
        assert k8s.image_name == f"ref-k8s-{arch.value}.qcow2"
        assert base.image_name == f"ref-{arch.value}.qcow2"
        assert k8s.disk_mib == 8192 >= base.disk_mib
        assert (k8s.ostree_ref, k8s.kernel_package) == (base.ostree_ref, base.kernel_package)


def test_variant_hash_is_its_own_and_stable() -> None:
    base = recipe.recipe_for(Arch.X86_64)
    k8s = recipe.recipe_for(Arch.X86_64, "k8s")
    assert recipe.recipe_hash(k8s) == recipe.recipe_hash(recipe.recipe_for(Arch.X86_64, "k8s"))
    assert recipe.recipe_hash(k8s) != recipe.recipe_hash(base)
    assert recipe.recipe_hash(k8s) != recipe.recipe_hash(recipe.recipe_for(Arch.AARCH64, "k8s"))


def test_variant_fingerprint_covers_pins_and_sources(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    now = variant.fingerprint(Arch.X86_64)
    assert variant.fingerprint(Arch.X86_64) == now
    assert variant.fingerprint(Arch.X86_64, Pins(kubernetes="v1.37.3")) != now
    assert variant.fingerprint(Arch.X86_64, Pins(containerd="v2.4.3")) != now
    # a changed image builder source is a new image
    monkeypatch.setattr(variant, "_SOURCES", (*variant._SOURCES, "enums.py"))
    assert variant.fingerprint(Arch.X86_64) != now


def test_variant_is_cached_beside_the_reference_image(monkeypatch: pytest.MonkeyPatch) -> None:
    from kolapy.refimage import build, cache

    built: list[str] = []

    def fake(rcp: recipe.Recipe, work: Path, say: build.Progress) -> Path:
        built.append(rcp.variant)
        out = work / "out"
        out.mkdir()
        (out / rcp.image_name).write_bytes(b"QFI\xfb")
        (out / cache.MANIFEST).write_text(json.dumps({"variant": rcp.variant}))
        return out

    monkeypatch.setattr(build, "_build_in", fake)
    monkeypatch.setattr(build, "require_host_tools", lambda platforms: None)
    assert cache.image_path(Arch.X86_64, "k8s") is None
    path = build.build_image(Arch.X86_64, variant="k8s", progress=lambda m: None)
    assert path.name == "ref-k8s-x86_64.qcow2"
    assert path.parent.name == recipe.recipe_hash(recipe.recipe_for(Arch.X86_64, "k8s"))
    assert cache.image_path(Arch.X86_64, "k8s") == path
    assert cache.image_path(Arch.X86_64) is None  # the reference image is another entry
    assert cache.read_manifest(Arch.X86_64, "k8s") == {"variant": "k8s"}
    # unchanged recipe: no second build
    assert build.ensure_image(Arch.X86_64, variant="k8s") == path
    assert build.build_image(Arch.X86_64, variant="k8s") == path
    assert built == ["k8s"]


def test_unknown_variant_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="image variant 'nope'"):
        recipe.recipe_for(Arch.X86_64, "nope")


def test_cli_image_path_names_the_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["image", "path", "--variant", "k8s"]) == 1
    assert "kolapy image build --variant k8s" in capsys.readouterr().err
    assert cli_main(["image", "path", "--variant", "k8s", "--iso"]) == 2
    assert "no live ISO of a variant" in capsys.readouterr().err


def test_image_names_are_what_the_recipe_loads() -> None:
    cluster = K8sCluster(master=Node("m", "10.0.0.1"))
    assert sorted(images.image_references()) == sorted(cluster.images())
    other = K8sCluster(master=Node("m", "10.0.0.1"), image_repository="registry.example:5000/k8s")
    assert sorted(images.image_references("registry.example:5000/k8s")) == sorted(other.images())
    assert images.IMAGES[-1].reference(pins=PINS) == f"registry.k8s.io/etcd:{PINS.etcd_image_tag}"


def test_image_names_are_what_the_built_kubeadm_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    from kolapy.k8s.build import cached_bin_dir

    if REAL_CACHE is None:
        monkeypatch.delenv("KOLAPY_CACHE_DIR")
    else:
        monkeypatch.setenv("KOLAPY_CACHE_DIR", REAL_CACHE)
    bin_dir = cached_bin_dir()
    if bin_dir is None:
        pytest.skip("kubeadm not built here (python -m kolapy.k8s.build)")
    got = subprocess.run([str(bin_dir / "kubeadm"), "config", "images", "list",
                          "--kubernetes-version", PINS.kubernetes],
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    assert sorted(got.stdout.split()) == sorted(images.image_references())


def _fake_bins(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    names = {b for img in images.IMAGES for _, b in img.binaries}
    names |= {*variant.NODE_COMMANDS, *variant.CONTAINERD_COMMANDS}
    for name in names:
        (bin_dir / name).write_bytes(f"binary {name}\n".encode())
    return bin_dir


def _layer_members(archive: Path, tmp_path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        digest = index["manifests"][0]["digest"].removeprefix("sha256:")
        manifest = json.loads(tar.extractfile(f"blobs/sha256/{digest}").read())  # type: ignore[union-attr]
        config = json.loads(tar.extractfile(  # type: ignore[union-attr]
            "blobs/sha256/" + manifest["config"]["digest"].removeprefix("sha256:")).read())
        layer = tmp_path / "layer.tar"
        layer.write_bytes(tar.extractfile(  # type: ignore[union-attr]
            "blobs/sha256/" + manifest["layers"][0]["digest"].removeprefix("sha256:")).read())
    with tarfile.open(layer) as lt:
        members = {m.name: m for m in lt.getmembers()}
    members["<config>"] = config  # type: ignore[assignment]
    return members


def test_images_hold_their_binaries_where_kubeadm_runs_them(tmp_path: Path) -> None:
    if not Path("/usr/sbin/xtables-nft-multi").exists():
        pytest.skip("no Debian iptables on this host (kube-proxy's image takes the root's)")
    bin_dir = _fake_bins(tmp_path)
    written = images.write_images(bin_dir, Path("/"), Arch.X86_64, tmp_path / "out")
    assert sorted(o.path.name for o in written) == sorted(
        f"{i.component}.tar" for i in images.IMAGES)
    by_component = {o.path.stem: o for o in written}
    for img in images.IMAGES:
        oci = by_component[img.component]
        assert read_index_names(oci.path) == [img.reference()]
        members = _layer_members(oci.path, tmp_path)
        config = members.pop("<config>")["config"]  # type: ignore[index]
        for path, _binary in img.binaries:
            assert members[path.lstrip("/")].mode == 0o755, (img.component, path)
        assert {"etc/passwd", "etc/group", "tmp"} <= set(members)
        has_iptables = "usr/sbin/xtables-nft-multi" in members
        assert has_iptables == (img.component == "kube-proxy"), img.component
        if img.component == "kube-proxy":
            for cmd in images.IPTABLES_COMMANDS:
                assert cmd.lstrip("/") in members, cmd
            assert any(m.startswith("usr/lib/x86_64-linux-gnu/xtables/libxt_comment")
                       for m in members)
            assert "/usr/local/bin" in config["Env"][0]
        if img.component in ("coredns", "pause"):
            assert config["Entrypoint"] == [f"/{img.component}"]


def test_kube_proxy_image_runs_its_iptables(tmp_path: Path) -> None:
    """The layer alone (no host libraries) runs iptables: its closure is complete."""
    if not Path("/usr/sbin/xtables-nft-multi").exists():
        pytest.skip("no Debian iptables on this host (kube-proxy's image takes the root's)")
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    entries = images.image_entries(images.IMAGES[3], _fake_bins(tmp_path), Path("/"),
                                   Arch.X86_64)
    oci = write_oci_archive(tmp_path / "kp.tar", "x/kube-proxy:v1", Arch.X86_64, [entries])
    members = _layer_members(oci.path, tmp_path)
    assert "usr/local/bin/kube-proxy" in members
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    subprocess.run(["tar", "-xf", str(tmp_path / "layer.tar"), "-C", str(rootfs)], check=True)
    for cmd in ("iptables", "ip6tables-save", "iptables-restore"):
        got = subprocess.run(["chroot", str(rootfs), f"/usr/sbin/{cmd}", "--version"],
                             capture_output=True, text=True, timeout=60)
        assert got.returncode == 0, got.stderr
        assert "nf_tables" in got.stdout, got.stdout


def test_install_puts_the_node_into_a_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not os.path.exists("/usr/bin/dpkg-divert"):
        pytest.skip("dpkg-divert (Debian's dpkg) not on this host")
    monkeypatch.setattr(images, "iptables_entries", lambda root, arch: [])
    root = tmp_path / "root"
    for d in ("usr/bin", "usr/lib/systemd/system", "var/lib/dpkg", "etc/containerd"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/diversions").write_text("")
    (root / "usr/bin/containerd").write_text("debian containerd 1.6\n")
    (root / "usr/bin/ctr").write_text("debian ctr\n")
    (root / "etc/containerd/config.toml").write_text("version = 2\n")
    (root / "usr/lib/systemd/system/containerd.service").write_text(
        "[Service]\nExecStart=/usr/bin/containerd\n")
    (root / "boot").mkdir()
    (root / "boot/config-6.1.0-99-cloud-amd64").write_text("CONFIG_CGROUPS=y\n")
    (root / "usr/lib/modules/6.1.0-99-cloud-amd64").mkdir(parents=True)
    bin_dir = _fake_bins(tmp_path)
    log = tmp_path / "build.log"
    said: list[str] = []
    info = variant.install(root, bin_dir, Arch.X86_64, log, said.append)
    assert (root / "usr/bin/containerd.debian").read_text() == "debian containerd 1.6\n"
    assert (root / "usr/bin/ctr.debian").read_text() == "debian ctr\n"
    diversions = (root / "var/lib/dpkg/diversions").read_text()
    assert "/usr/bin/containerd\n/usr/bin/containerd.debian\n:\n" in diversions
    for cmd in (*variant.NODE_COMMANDS, *variant.CONTAINERD_COMMANDS):
        assert (root / "usr/bin" / cmd).read_text() == f"binary {cmd}\n"
        assert (root / "usr/bin" / cmd).stat().st_mode & 0o777 == 0o755
    assert "version = 4" in (root / "etc/containerd/config.toml").read_text()
    assert (root / "usr/lib/modules/6.1.0-99-cloud-amd64/config").read_text() == \
        "CONFIG_CGROUPS=y\n"
    archives = sorted(p.name for p in (root / IMAGE_ARCHIVE_DIR.lstrip("/")).iterdir())
    assert archives == sorted(f"{i.component}.tar" for i in images.IMAGES)
    assert sorted(info["images"]) == sorted(images.image_references())
    on_disk = json.loads((root / variant.INFO_FILE.lstrip("/")).read_text())
    assert on_disk == info and on_disk["pins"] == PINS.to_json()


def test_install_refuses_a_containerd_unit_it_does_not_know(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(variant, "divert", lambda root, path, log: None)
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/lib/systemd/system").mkdir(parents=True)
    (root / "usr/lib/systemd/system/containerd.service").write_text(
        "[Service]\nExecStart=/usr/sbin/containerd\n")
    with pytest.raises(RuntimeError, match="does not start /usr/bin/containerd"):
        variant.install(root, _fake_bins(tmp_path), Arch.X86_64, tmp_path / "log", print)


def test_default_ci_never_builds_the_variant_or_go() -> None:
    ci = (REPO_ROOT / ".ci/run").read_text()
    assert "--variant" not in ci and "kolapy.k8s.build" not in ci
    from kolapy.suites import k8s as k8s_suite

    (mark,) = [m for m in k8s_suite.test_bootstrap.pytestmark  # type: ignore[attr-defined]
               if m.name == "kola"]
    assert mark.kwargs["required_tag"] == "k8s"
