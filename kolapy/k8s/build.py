"""Kubernetes node binaries built from their Go modules, cached.

``build_node_binaries()`` builds kubeadm, kubelet, kubectl, the control-plane
commands, etcd (+ etcdctl), CoreDNS and pause at the releases pinned in
:mod:`kolapy.k8s.versions`, for one architecture, into
``<cache>/k8s/<key>/bin/`` (the key hashes the pins, the architecture, the Go
version and this recipe).  A second call with the same key costs nothing.

Each Go program is built from a small wrapper module of our own that requires
the program's module.  A module's own ``replace`` directives to local
directories (Kubernetes' ``k8s.io/<staging> => ./staging/src/...``, etcd's
``=> ../api``) do not apply to a dependency, so the wrapper replaces each of
them by the published release (``v0.<minor>.<patch>`` for Kubernetes'
staging modules, the same version for etcd's).  pause is Kubernetes' C
program (``build/pause/linux/pause.c``), compiled static with gcc.
Builds run under ``nice -n 19``: other work on the host keeps its CPU.

Run: ``python -m kolapy.k8s.build [--arch aarch64]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from kolapy.enums import Arch
from kolapy.k8s.versions import PINS, Pins
from kolapy.refimage.cache import cache_root

RECIPE_VERSION = 1
KUBE_COMMANDS = (
    "kubeadm",
    "kubelet",
    "kubectl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
)
CONTAINERD_COMMANDS = ("containerd", "containerd-shim-runc-v2", "ctr")
ALL_BINARIES = (*KUBE_COMMANDS, "etcd", "etcdctl", "coredns", "pause", *CONTAINERD_COMMANDS)
MANIFEST = "manifest.json"
GOARCH = {Arch.X86_64: "amd64", Arch.AARCH64: "arm64"}
CC = {Arch.X86_64: "gcc", Arch.AARCH64: "aarch64-linux-gnu-gcc"}
_REPLACE_LOCAL = re.compile(r"^\s*(?:replace\s+)?(\S+)(?:\s+\S+)?\s+=>\s+(\.\.?/\S*)\s*$")

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    """A Go or C build step failed (the message names the step and its output tail)."""


@dataclass(frozen=True)
class GoProgram:
    """A ``main`` package to build, from the module that holds it."""

    name: str
    module: str
    version: str
    package: str


def local_replaces(go_mod: str) -> list[str]:
    """Modules that ``go_mod`` replaces by a local directory (``=> ./x`` or ``=> ../x``)."""
    found: list[str] = []
    for line in go_mod.splitlines():
        match = _REPLACE_LOCAL.match(line)
        if match:
            found.append(match.group(1))
    return found


def wrapper_go_mod(
    requires: Mapping[str, str], replaces: Mapping[str, str], go_version: str = "1.26.0"
) -> str:
    """A wrapper module's go.mod (``requires``/``replaces``: module -> version)."""
    lines = ["module kolapy.local/k8sbuild", "", f"go {go_version}", "", "require ("]
    lines += [f"\t{mod} {ver}" for mod, ver in sorted(requires.items())]
    lines.append(")")
    if replaces:
        lines += ["", "replace ("]
        lines += [f"\t{mod} => {mod} {ver}" for mod, ver in sorted(replaces.items())]
        lines.append(")")
    return "\n".join(lines) + "\n"


def tools_go(packages: Sequence[str]) -> str:
    """A ``tools`` build-tagged file importing ``packages``, so ``go mod tidy`` keeps their deps."""
    imports = "\n".join(f'\t_ "{pkg}"' for pkg in sorted(packages))
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"


def kube_ldflags(pins: Pins, build_date: str) -> str:
    """The version stamps Kubernetes' own build sets (hack/lib/version.sh)."""
    major, minor = pins.kubernetes.removeprefix("v").split(".")[:2]
    values = {
        "gitVersion": pins.kubernetes,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": build_date,
    }
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version"):
        flags += [f"-X {pkg}.{key}={value}" for key, value in values.items()]
    return " ".join(flags)


def go_version() -> str:
    """``go version``'s version word (e.g. ``go1.26.8``); raises BuildError without Go."""
    try:
        out = subprocess.run(["go", "version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BuildError(f"go: not usable ({exc})") from exc
    return out.split()[2]


def build_key(pins: Pins, arch: Arch, go: str) -> str:
    """The cache key of one build: pins, architecture, Go version, this recipe's version."""
    blob = json.dumps([pins.to_json(), arch.value, go, RECIPE_VERSION], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def k8s_dir() -> Path:
    return cache_root() / "k8s"


def cached_bin_dir(pins: Pins = PINS, arch: Arch = Arch.X86_64) -> Path | None:
    """The bin dir of a finished build for ``pins``/``arch``, or None (never builds)."""
    try:
        key = build_key(pins, arch, go_version())
    except BuildError:
        return None
    out = k8s_dir() / key
    return out / "bin" if (out / MANIFEST).is_file() else None


def _run(cmd: Sequence[str], cwd: Path, env: Mapping[str, str], step: str) -> None:
    proc = subprocess.run(
        ["nice", "-n", "19", *cmd], cwd=cwd, env=dict(env), capture_output=True, text=True
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise BuildError(f"{step} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")


def _go_env(arch: Arch, work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CGO_ENABLED="0",
        GOOS="linux",
        GOARCH=GOARCH[arch],
        GOFLAGS="-mod=mod -buildvcs=false",
        GOWORK="off",
    )
    env.setdefault("GOTOOLCHAIN", "local")
    return env


def _module_dir(module: str, version: str, env: Mapping[str, str], cwd: Path) -> Path:
    """Download ``module@version`` and return its directory in the module cache."""
    proc = subprocess.run(
        ["nice", "-n", "19", "go", "mod", "download", "-json", f"{module}@{version}"],
        cwd=cwd, env=dict(env), capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise BuildError(f"go mod download {module}@{version} failed:\n{proc.stdout}{proc.stderr}")
    return Path(json.loads(proc.stdout)["Dir"])


def _build_go(
    name: str,
    programs: Sequence[GoProgram],
    replace_version: Callable[[GoProgram], str],
    ldflags: str,
    work: Path,
    bin_dir: Path,
    env: Mapping[str, str],
    tags: str = "",
) -> None:
    """Build ``programs`` (all from one module family) in one wrapper module ``work/name``."""
    mod_dir = work / name
    mod_dir.mkdir(parents=True, exist_ok=True)
    requires = {p.module: p.version for p in programs}
    replaces: dict[str, str] = {}
    for program in programs:
        src = _module_dir(program.module, program.version, env, work)
        for module in local_replaces((src / "go.mod").read_text()):
            replaces[module] = replace_version(program)
    (mod_dir / "go.mod").write_text(wrapper_go_mod(requires, replaces))
    (mod_dir / "tools.go").write_text(tools_go([p.package for p in programs]))
    _run(["go", "mod", "tidy"], mod_dir, env, f"{name}: go mod tidy")
    for program in programs:
        _run(
            ["go", "build", "-trimpath", f"-tags={tags}", "-ldflags", ldflags, "-o",
             str(bin_dir / program.name), program.package],
            mod_dir, env, f"{name}: go build {program.name}",
        )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _same_version(program: GoProgram) -> str:
    return program.version


def _build_pause(pins: Pins, arch: Arch, work: Path, bin_dir: Path, env: Mapping[str, str]) -> None:
    src = _module_dir("k8s.io/kubernetes", pins.kubernetes, env, work) / "build/pause/linux/pause.c"
    cc = CC[arch]
    if shutil.which(cc) is None:
        raise BuildError(f"pause: C compiler {cc} not found (Debian: gcc / gcc-aarch64-linux-gnu)")
    _run([cc, "-Os", "-static", "-Wall", "-Werror", f"-DVERSION=v{pins.pause}",
          "-o", str(bin_dir / "pause"), str(src)], work, env, "pause: cc")


def build_node_binaries(
    pins: Pins = PINS, arch: Arch = Arch.X86_64, progress: Progress | None = None
) -> Path:
    """Build (or find cached) every node binary for ``arch``; returns the bin directory."""
    say = progress or (lambda _msg: None)
    key = build_key(pins, arch, go_version())
    root = k8s_dir()
    out = root / key
    if (out / MANIFEST).is_file():
        return out / "bin"
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{key}.lock")):
        if (out / MANIFEST).is_file():
            return out / "bin"
        work = root / f".work-{key}"
        bin_dir = work / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        env = _go_env(arch, work)
        date = "2026-01-01T00:00:00Z"
        timings: dict[str, float] = {}
        kube = [
            GoProgram(cmd, "k8s.io/kubernetes", pins.kubernetes, f"k8s.io/kubernetes/cmd/{cmd}")
            for cmd in KUBE_COMMANDS
        ]
        etcd_mod = "go.etcd.io/etcd/"
        etcd = [
            GoProgram("etcd", f"{etcd_mod}server/v3", pins.etcd, f"{etcd_mod}server/v3"),
            GoProgram("etcdctl", f"{etcd_mod}etcdctl/v3", pins.etcd, f"{etcd_mod}etcdctl/v3"),
        ]
        dns_mod = "github.com/coredns/coredns"
        coredns = [GoProgram("coredns", dns_mod, pins.coredns, dns_mod)]
        ctd_mod = "github.com/containerd/containerd/v2"
        containerd = [
            GoProgram(cmd, ctd_mod, pins.containerd, f"{ctd_mod}/cmd/{cmd}")
            for cmd in CONTAINERD_COMMANDS
        ]
        ctd_flags = f"-s -w -X {ctd_mod}/version.Version={pins.containerd}"
        same = _same_version
        steps: list[tuple[str, Callable[[], None]]] = [
            ("pause", lambda: _build_pause(pins, arch, work, bin_dir, env)),
            ("etcd", lambda: _build_go("etcd", etcd, same, "-s -w", work, bin_dir, env)),
            ("coredns", lambda: _build_go("coredns", coredns, same, "-s -w", work, bin_dir, env)),
            ("containerd", lambda: _build_go("containerd", containerd, same, ctd_flags,
                                             work, bin_dir, env, tags="no_btrfs,no_devmapper")),
            ("kubernetes", lambda: _build_go("kubernetes", kube, lambda _p: pins.staging,
                                             kube_ldflags(pins, date), work, bin_dir, env)),
        ]
        cpu: dict[str, float] = {}
        for label, step in steps:
            say(f"k8s build [{arch.value}]: {label} ...")
            started, cpu_before = time.monotonic(), _children_cpu()
            step()
            timings[label] = round(time.monotonic() - started, 1)
            cpu[label] = round(_children_cpu() - cpu_before, 1)
            say(f"k8s build [{arch.value}]: {label} done in {timings[label]} s "
                f"({cpu[label]} s CPU)")
        missing = [b for b in ALL_BINARIES if not (bin_dir / b).is_file()]
        if missing:
            raise BuildError(f"build finished without {', '.join(missing)}")
        manifest = {
            "pins": pins.to_json(),
            "arch": arch.value,
            "go": go_version(),
            "seconds": timings,
            # user+system CPU of the go/cc processes: comparable across host loads
            "cpu_seconds": cpu,
            "binaries": {b: (bin_dir / b).stat().st_size for b in ALL_BINARIES},
        }
        staging = root / f".out-{key}"
        shutil.rmtree(staging, ignore_errors=True)
        (staging).mkdir()
        shutil.move(str(bin_dir), staging / "bin")
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        staging.rename(out)
        shutil.rmtree(work, ignore_errors=True)
        return out / "bin"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kolapy.k8s.build", description=__doc__)
    parser.add_argument("--arch", default=Arch.X86_64.value, choices=[a.value for a in GOARCH])
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        bin_dir = build_node_binaries(arch=Arch(args.arch), progress=lambda m: print(m, flush=True))
    except BuildError as exc:
        print(f"kolapy k8s build: {exc}", file=sys.stderr)
        return 1
    print(f"{bin_dir} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
