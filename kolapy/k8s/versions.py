"""Pinned, mutually compatible releases of everything a Kubernetes node needs.

The Kubernetes release decides the rest: its kubeadm names the etcd, CoreDNS
and pause image tags it deploys (``cmd/kubeadm/app/constants/constants.go``:
``DefaultEtcdVersion``, ``CoreDNSVersion``, ``PauseVersion``), and its staging
modules (``k8s.io/api`` ...) are released as ``v0.<minor>.<patch>``.
How to bump: docs/k8s.md.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pins:
    """Versions of one Kubernetes node build (Go module versions, with the ``v``)."""

    kubernetes: str = "v1.37.2"
    etcd: str = "v3.7.0"
    etcd_image_tag: str = "3.7.0-0"
    coredns: str = "v1.14.6"
    pause: str = "3.10.2"
    # Kubernetes 1.36+ needs containerd 2.x (Debian 12 has 1.6): built too.
    containerd: str = "v2.4.2"

    @property
    def staging(self) -> str:
        """The version of k8s.io/api, k8s.io/client-go ... matching ``kubernetes``."""
        major_minor_patch = self.kubernetes.removeprefix("v").split(".")
        return "v0." + ".".join(major_minor_patch[1:])

    def to_json(self) -> dict[str, str]:
        return {
            "kubernetes": self.kubernetes,
            "etcd": self.etcd,
            "etcd_image_tag": self.etcd_image_tag,
            "coredns": self.coredns,
            "pause": self.pause,
            "containerd": self.containerd,
        }


PINS = Pins()
