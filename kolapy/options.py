"""The options shared by `kolapy run` and the pytest plugin.

One table, so the CLI and the plugin can never disagree: the CLI forwards each
option it received to pytest under the same flag.
"""

from __future__ import annotations

from typing import Any

#: (flag, argparse/pytest keyword arguments)
OPTIONS: list[tuple[str, dict[str, Any]]] = [
    (
        "--nestos-image",
        dict(
            dest="nestos_image",
            metavar="IMAGE",
            help="qcow2 image to test (default: the reference image, built on first use)",
        ),
    ),
    (
        "--nestos-iso",
        dict(
            dest="nestos_iso",
            metavar="ISO",
            help="boot every machine from this live ISO (config embedded into a private copy; "
            "the iso.* scenarios default to the reference live ISO)",
        ),
    ),
    (
        "--arch",
        dict(
            dest="kola_arch",
            metavar="ARCH",
            choices=["x86_64", "aarch64"],
            help="guest architecture (default x86_64)",
        ),
    ),
    (
        "--firmware",
        dict(
            dest="kola_firmware",
            choices=["bios", "uefi"],
            help="guest firmware (default bios; aarch64 is always uefi)",
        ),
    ),
    (
        "--accel",
        dict(
            dest="kola_accel",
            choices=["auto", "kvm", "tcg"],
            help="QEMU accelerator; auto uses KVM only where guests really run under it",
        ),
    ),
    (
        "--platform",
        dict(
            dest="kola_platform",
            choices=["qemu", "libvirt"],
            help="where machines run: qemu (QEMU processes of this run, the default) or "
            "libvirt (transient domains through libvirt-python)",
        ),
    ),
    (
        "--platform-file",
        dict(
            dest="kola_platform_file",
            metavar="FILE",
            help="a platform profile (YAML, the schema of platforms/qemu-x86_64.yaml) "
            "instead of the shipped one for --platform and --arch",
        ),
    ),
    (
        "--libvirt-uri",
        dict(
            dest="kola_libvirt_uris",
            action="append",
            metavar="URI",
            help="--platform libvirt: a libvirt host (default qemu:///system; repeatable: "
            "each machine goes to the one with the most free memory, a cluster to one)",
        ),
    ),
    (
        "--libvirt-storage",
        dict(
            dest="kola_libvirt_storage",
            choices=["auto", "files", "pool"],
            help="--platform libvirt: files (the domain uses this machine's files) or pool "
            "(volumes in a storage pool, console and journals through libvirt: any host); "
            "auto (default): files on a local URI, pool on a remote one",
        ),
    ),
    (
        "--libvirt-pool",
        dict(
            dest="kola_libvirt_pool",
            metavar="POOL",
            help="--platform libvirt, pool storage: the storage pool (default kolapy, a "
            "directory pool made when missing)",
        ),
    ),
    (
        "--libvirt-network",
        dict(
            dest="kola_libvirt_network",
            metavar="NET",
            help="--platform libvirt: how SSH reaches a guest: user (a user-mode NIC, SSH "
            "forwarded from 127.0.0.1), nat (a NAT network of the run, SSH to the DHCP "
            "lease) or the name of a libvirt network (SSH to the lease); auto (default): "
            "user on a local URI, nat on a remote one",
        ),
    ),
    (
        "--memory",
        dict(
            dest="kola_memory", type=int, metavar="MiB", help="guest memory in MiB (default 2048)"
        ),
    ),
    (
        "--disk-size",
        dict(
            dest="kola_disk_size",
            metavar="SIZE",
            help="each machine's disk: SIZE (10G) or +SIZE more than the image (+5G); "
            "a test's minDisk may raise it (default: the image's size)",
        ),
    ),
    (
        "--distro",
        dict(
            dest="kola_distro",
            choices=["nestos", "fcos"],
            help="distro conventions (ssh user, ports; default nestos)",
        ),
    ),
    (
        "--tag",
        dict(
            dest="kola_tags",
            action="append",
            metavar="TAG",
            help="run tests with TAG (repeatable; !TAG excludes)",
        ),
    ),
    (
        "--denylist",
        dict(
            dest="kola_denylist",
            metavar="FILE",
            help="kola-denylist.yaml: matching tests are skipped (or warn)",
        ),
    ),
    (
        "--denylist-test",
        dict(
            dest="kola_denylist_tests",
            action="append",
            metavar="PATTERN",
            help="skip the tests PATTERN matches, as a denylist entry would (repeatable)",
        ),
    ),
    (
        "--show-skipped",
        dict(
            dest="kola_show_skipped",
            action="store_true",
            help="report deselected tests with the reason",
        ),
    ),
    (
        "--skip-console-checks",
        dict(
            dest="kola_skip_console_checks",
            action="store_true",
            help="do not fail tests on console/journal badness",
        ),
    ),
    (
        "--upgrade-repo",
        dict(
            dest="upgrade_repo",
            metavar="DIR|URL",
            help="run-upgrade: ostree archive repo to upgrade to (a directory is served over "
            "HTTP; default on the reference image: a successor commit kolapy makes)",
        ),
    ),
    (
        "--upgrade-ref",
        dict(dest="upgrade_ref", metavar="REF", help="run-upgrade: the ref in --upgrade-repo"),
    ),
    (
        "--keep-failed",
        dict(
            dest="kola_keep_failed",
            action="store_true",
            help="leave a failed test's machine running until Ctrl-C",
        ),
    ),
    (
        "--no-restore",
        dict(
            dest="kola_no_restore",
            action="store_true",
            help="boot every machine instead of restoring clones of a saved one",
        ),
    ),
]

#: pytest-only spellings of options the CLI names differently.
PYTEST_ONLY: list[tuple[str, dict[str, Any]]] = [
    (
        "--kola-output-dir",
        dict(
            dest="kola_output_dir",
            metavar="DIR",
            help="kola output dir (default _kola_temp/qemu-<date>-<pid>)",
        ),
    ),
    (
        "--kola-exttest",
        dict(
            dest="kola_exttest",
            action="append",
            metavar="DIR",
            help="also run the kola external tests of DIR (DIR/tests/kola; repeatable)",
        ),
    ),
    (
        "--kola-pattern",
        dict(
            dest="kola_patterns",
            action="append",
            metavar="GLOB",
            help="select tests by kola name glob (repeatable)",
        ),
    ),
]


def forward(namespace: Any) -> list[str]:
    """Turn parsed CLI options back into pytest arguments (same flags)."""
    args: list[str] = []
    for flag, kw in OPTIONS:
        value = getattr(namespace, kw["dest"], None)
        if value in (None, False, []):
            continue
        if kw.get("action") == "store_true":
            args.append(flag)
        elif kw.get("action") == "append":
            args += [f"{flag}={v}" for v in value]
        else:
            args.append(f"{flag}={value}")
    return args
