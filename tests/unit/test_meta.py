"""KolaMeta: marker validation, merging, naming, disk syntax."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kolapy.errors import BadInputError
from kolapy.machine.spec import DiskSpec
from kolapy.meta import KolaMeta, MetadataError, build_meta, full_name, kola, parse_disk


def test_kola_returns_a_kola_mark() -> None:
    mark = kola(name="basic", tags=["smoke"], exclusive=False)
    assert mark.mark.name == "kola"
    assert mark.mark.kwargs == {"name": "basic", "tags": ["smoke"], "exclusive": False}


def test_positional_name() -> None:
    assert kola("basic").mark.kwargs == {"name": "basic"}


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"nmae": "x"}, "unknown kola metadata key 'nmae'"),
        ({"timeout": "10m"}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"min_memory": -5}, "min_memory"),
        ({"min_memory": 1.5}, "min_memory"),
        ({"exclusive": "yes"}, "exclusive"),
        ({"architectures": ["sparc"]}, "unknown architecture 'sparc'"),
        ({"firmwares": ["coreboot"]}, "unknown firmware"),
        ({"additional_disks": ["5"]}, "additional_disks"),
        ({"additional_disks": ["5G:bogus"]}, "unknown disk option 'bogus'"),
        ({"flags": ["no_ssh"]}, "unknown flag"),
        ({"cluster_size": 0}, "cluster_size"),
        ({"name": "a/b"}, "invalid kola name"),
        ({"architectures": ["x86_64", "!aarch64"]}, "mixes"),
    ],
)
def test_invalid_metadata_names_the_key(kwargs: dict, needle: str) -> None:
    with pytest.raises(MetadataError, match=needle) as info:
        kola(**kwargs)
    assert isinstance(info.value, BadInputError)


def test_conflicts_need_non_exclusive() -> None:
    with pytest.raises(MetadataError, match="conflicts"):
        build_meta({"name": "a", "conflicts": ["b"]}, "t.py::test_a")
    meta = build_meta({"name": "a", "conflicts": ["b"], "exclusive": False}, "w")
    assert meta.conflicts == ("b",)


def test_defaults_match_kola() -> None:
    meta = build_meta({"name": "basic"}, "w")
    assert meta.timeout == 600
    assert meta.exclusive is True
    assert meta.cluster_size == 1
    assert meta.flags == frozenset()
    assert full_name(meta) == "basic"


def test_bang_prefix_excludes() -> None:
    meta = build_meta(
        {
            "name": "a",
            "architectures": "!s390x ppc64le",
            "platforms": ["!aws"],
            "distros": "nestos",
        },
        "w",
    )
    assert meta.architectures == ()
    assert meta.exclude_architectures == ("s390x", "ppc64le")
    assert meta.exclude_platforms == ("aws",)
    assert meta.distros == ("nestos",)


def test_arch_aliases_normalised() -> None:
    assert build_meta({"name": "a", "architectures": ["amd64"]}, "w").architectures == ("x86_64",)


def test_kargs_string_or_list() -> None:
    meta = build_meta({"name": "a", "append_kargs": "quiet foo=bar"}, "w")
    assert meta.append_kargs == ("quiet", "foo=bar")
    meta = build_meta({"name": "a", "append_firstboot_kargs": ["x=1"]}, "w")
    assert meta.append_firstboot_kargs == ("x=1",)


def test_tags_and_flags() -> None:
    meta = build_meta({"name": "a", "tags": "slow net", "flags": ["no_ssh_key"]}, "w")
    assert meta.tags == ("slow", "net")
    assert meta.has_flag("no_ssh_key")
    assert not meta.has_flag("allow_config_warnings")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("5G", DiskSpec(5.0)),
        ("5G:mpath,channel=nvme,serial=x", DiskSpec(5.0, "x", "nvme", ("mpath",))),
        ("10G:4k", DiskSpec(10.0, options=("4k",))),
    ],
)
def test_parse_disk(spec: str, expected: DiskSpec) -> None:
    assert parse_disk(spec) == expected


@pytest.mark.parametrize(
    "spec", ["5", "5M", "G", "0G", "5G:channel=floppy", "5G:a:b", "5G:mpath=1"]
)
def test_parse_disk_rejects(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_disk(spec)


def test_ignition_kept_as_given_and_meta_hashable() -> None:
    cfg = {"ignition": {"version": "3.3.0"}}
    meta = build_meta({"name": "a", "ignition": cfg}, "w")
    assert meta.ignition is cfg
    assert hash(meta) == hash(build_meta({"name": "a", "ignition": {"x": 1}}, "w"))


def test_full_name_property() -> None:
    assert KolaMeta("basic", subtest="ssh-port").full_name == "basic/ssh-port"


# ---------------------------------------------------------------- from pytest items

CONFTEST = textwrap.dedent(
    """
    import json
    import pytest
    from kolapy.meta import meta_from_item, full_name

    def pytest_collection_modifyitems(config, items):
        out = {}
        for item in items:
            meta = meta_from_item(item)
            out[item.nodeid] = None if meta is None else {
                "name": full_name(meta), "exclusive": meta.exclusive,
                "tags": list(meta.tags), "timeout": meta.timeout,
            }
        config.rootpath.joinpath("metas.json").write_text(json.dumps(out))
    """
)


def _run_collect(path: Path, source: str, module: str) -> subprocess.CompletedProcess[str]:
    """Collect ``source`` in a separate pytest (without the kolapy plugin)."""
    (path / "conftest.py").write_text(CONFTEST)
    (path / f"{module}.py").write_text(textwrap.dedent(source))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:kolapy",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(path),
            str(path),
        ],
        cwd=path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _collect(path: Path, source: str, module: str = "test_mod") -> dict:
    proc = _run_collect(path, source, module)
    assert (path / "metas.json").exists(), proc.stdout + proc.stderr
    return json.loads((path / "metas.json").read_text())


def test_module_name_makes_subtests_and_markers_merge(tmp_path: Path) -> None:
    metas = _collect(
        tmp_path,
        """
        from kolapy.meta import kola
        pytestmark = kola(name="basic", exclusive=False, tags=["smoke"])

        def test_ssh_port(): pass

        @kola(tags=["slow"], timeout=30)
        def test_dbus_perms(): pass

        @kola(subtest="custom")
        def test_other(): pass
        """,
    )
    assert metas["test_mod.py::test_ssh_port"]["name"] == "basic/ssh-port"
    dbus = metas["test_mod.py::test_dbus_perms"]
    assert dbus == {"name": "basic/dbus-perms", "exclusive": False, "tags": ["slow"], "timeout": 30}
    assert metas["test_mod.py::test_other"]["name"] == "basic/custom"


def test_function_name_and_default_name(tmp_path: Path) -> None:
    metas = _collect(
        tmp_path,
        """
        import pytest
        from kolapy.meta import kola

        @kola(name="podman.base")
        def test_run(): pass

        @kola(tags=["x"])
        def test_base_thing(): pass

        def test_plain(): pass

        @kola(name="p")
        @pytest.mark.parametrize("n", [1, 2])
        def test_param(n): pass
        """,
        module="test_podman",
    )
    assert metas["test_podman.py::test_run"]["name"] == "podman.base"
    assert metas["test_podman.py::test_base_thing"]["name"] == "podman.base-thing"
    assert metas["test_podman.py::test_plain"] is None
    assert metas["test_podman.py::test_param[1]"]["name"] == "p/1"


def test_invalid_marker_is_a_collection_error_naming_the_test(tmp_path: Path) -> None:
    source = """
        import pytest

        @pytest.mark.kola(name="x", min_memory=-1)
        def test_it(): pass
        """
    proc = _run_collect(tmp_path, source, "test_bad")
    assert proc.returncode != 0
    assert "test_bad.py::test_it" in proc.stdout + proc.stderr
    assert "min_memory" in proc.stdout + proc.stderr
