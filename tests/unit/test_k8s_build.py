"""kolapy.k8s.build's pure parts: wrapper go.mod, replaces, version stamps, cache key."""

from __future__ import annotations

import dataclasses

from kolapy.enums import Arch
from kolapy.k8s.build import build_key, kube_ldflags, local_replaces, tools_go, wrapper_go_mod
from kolapy.k8s.versions import PINS

KUBE_GO_MOD = """module k8s.io/kubernetes

go 1.26.0

require (
\tk8s.io/api v0.0.0
\tgo.etcd.io/etcd/client/v3 v3.7.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tgithub.com/some/fork => github.com/other/fork v1.2.3
)

replace go.etcd.io/etcd/api/v3 => ../api
"""


def test_local_replaces_only() -> None:
    assert local_replaces(KUBE_GO_MOD) == [
        "k8s.io/api", "k8s.io/client-go", "go.etcd.io/etcd/api/v3"]


def test_wrapper_go_mod() -> None:
    text = wrapper_go_mod({"k8s.io/kubernetes": "v1.37.2"},
                          {"k8s.io/client-go": "v0.37.2", "k8s.io/api": "v0.37.2"})
    assert text.startswith("module kolapy.local/k8sbuild\n\ngo 1.26.0\n")
    assert "\tk8s.io/kubernetes v1.37.2\n" in text
    # sorted, each to the published release
    assert text.index("k8s.io/api => k8s.io/api v0.37.2") < text.index(
        "k8s.io/client-go => k8s.io/client-go v0.37.2")
    assert "replace" not in wrapper_go_mod({"a/b": "v1.0.0"}, {})


def test_staging_version_and_stamps() -> None:
    assert PINS.staging == "v0." + PINS.kubernetes.removeprefix("v").split(".", 1)[1]
    flags = kube_ldflags(PINS, "2026-01-01T00:00:00Z")
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {pkg}.gitVersion={PINS.kubernetes}" in flags
        assert f"-X {pkg}.gitMajor=1" in flags
    assert tools_go(["b/c", "a/b"]).splitlines()[0] == "//go:build tools"
    assert tools_go(["b/c", "a/b"]).index('"a/b"') < tools_go(["b/c", "a/b"]).index('"b/c"')


def test_cache_key_follows_every_input() -> None:
    base = build_key(PINS, Arch.X86_64, "go1.26.8")
    assert base == build_key(PINS, Arch.X86_64, "go1.26.8")
    assert base != build_key(PINS, Arch.AARCH64, "go1.26.8")
    assert base != build_key(PINS, Arch.X86_64, "go1.27.3")
    assert base != build_key(dataclasses.replace(PINS, coredns="v9.9.9"), Arch.X86_64, "go1.26.8")
