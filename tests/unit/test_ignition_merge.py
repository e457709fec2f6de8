"""Ignition's merge rules (coreos/ignition config/merge, operator-notes "Config Merging")."""

from __future__ import annotations

from typing import Any

from kolapy.ignition import Ignition
from kolapy.ignition.merge import merge_configs


def cfg(**sections: Any) -> dict[str, Any]:
    return {"ignition": {"version": "3.3.0"}, **sections}


def test_inputs_are_not_modified() -> None:
    parent = cfg(passwd={"users": [{"name": "nest", "sshAuthorizedKeys": ["a"]}]})
    child = cfg(passwd={"users": [{"name": "nest", "sshAuthorizedKeys": ["b"]}]})
    snapshot = (repr(parent), repr(child))
    merge_configs(parent, child)
    assert (repr(parent), repr(child)) == snapshot


def test_objects_merge_key_by_key_child_wins() -> None:
    parent = cfg(
        ignition={"version": "3.3.0", "timeouts": {"httpTotal": 10, "httpResponseHeaders": 5}}
    )
    child = cfg(ignition={"version": "3.3.0", "timeouts": {"httpTotal": 30}})
    out = merge_configs(parent, child)
    assert out["ignition"]["timeouts"] == {"httpTotal": 30, "httpResponseHeaders": 5}


def test_child_null_keeps_parent_value() -> None:
    parent = cfg(systemd={"units": [{"name": "a.service", "enabled": True}]})
    child = cfg(systemd={"units": [{"name": "a.service", "enabled": None, "mask": False}]})
    out = merge_configs(parent, child)
    assert out["systemd"]["units"] == [{"name": "a.service", "enabled": True, "mask": False}]


def test_files_merge_by_path_and_keep_parent_order() -> None:
    parent = cfg(
        storage={
            "files": [
                {"path": "/a", "mode": 0o600, "contents": {"source": "data:,1"}},
                {"path": "/b", "mode": 0o644},
            ]
        }
    )
    child = cfg(
        storage={"files": [{"path": "/c"}, {"path": "/a", "contents": {"source": "data:,2"}}]}
    )
    files = merge_configs(parent, child)["storage"]["files"]
    assert [f["path"] for f in files] == ["/a", "/b", "/c"]
    assert files[0] == {"path": "/a", "mode": 0o600, "contents": {"source": "data:,2"}}


def test_files_directories_links_share_one_key_space() -> None:
    parent = cfg(
        storage={
            "files": [{"path": "/x"}, {"path": "/keep"}],
            "directories": [{"path": "/d"}],
        }
    )
    child = cfg(storage={"links": [{"path": "/x", "target": "/y"}], "files": [{"path": "/d"}]})
    st = merge_configs(parent, child)["storage"]
    assert st["files"] == [{"path": "/keep"}, {"path": "/d"}]
    assert st["links"] == [{"path": "/x", "target": "/y"}]
    assert st["directories"] == []


def test_units_and_dropins_merge_by_name() -> None:
    parent = cfg(
        systemd={
            "units": [
                {
                    "name": "a.service",
                    "contents": "A",
                    "dropins": [{"name": "10.conf", "contents": "x"}, {"name": "20.conf"}],
                }
            ]
        }
    )
    child = cfg(
        systemd={
            "units": [
                {
                    "name": "a.service",
                    "enabled": True,
                    "dropins": [{"name": "10.conf", "contents": "y"}],
                },
                {"name": "b.service"},
            ]
        }
    )
    units = merge_configs(parent, child)["systemd"]["units"]
    assert units == [
        {
            "name": "a.service",
            "contents": "A",
            "dropins": [{"name": "10.conf", "contents": "y"}, {"name": "20.conf"}],
            "enabled": True,
        },
        {"name": "b.service"},
    ]


def test_plain_value_lists_append_without_duplicates() -> None:
    parent = cfg(
        passwd={"users": [{"name": "nest", "groups": ["wheel"], "sshAuthorizedKeys": ["k1", "k2"]}]}
    )
    child = cfg(
        passwd={
            "users": [
                {"name": "nest", "groups": ["docker", "wheel"], "sshAuthorizedKeys": ["k2", "k3"]}
            ]
        }
    )
    user = merge_configs(parent, child)["passwd"]["users"][0]
    assert user["sshAuthorizedKeys"] == ["k1", "k2", "k3"]
    assert user["groups"] == ["wheel", "docker"]


def test_users_and_groups_by_name() -> None:
    parent = cfg(passwd={"users": [{"name": "a", "uid": 1}], "groups": [{"name": "g", "gid": 5}]})
    child = cfg(
        passwd={
            "users": [{"name": "b"}, {"name": "a", "shell": "/bin/sh"}],
            "groups": [{"name": "g", "gid": 6}],
        }
    )
    pw = merge_configs(parent, child)["passwd"]
    assert pw["users"] == [{"name": "a", "uid": 1, "shell": "/bin/sh"}, {"name": "b"}]
    assert pw["groups"] == [{"name": "g", "gid": 6}]


def test_kernel_arguments_share_one_key_space() -> None:
    parent = cfg(kernelArguments={"shouldExist": ["quiet", "foo=1"], "shouldNotExist": ["bar"]})
    child = cfg(kernelArguments={"shouldNotExist": ["quiet"], "shouldExist": ["bar", "baz"]})
    ka = merge_configs(parent, child)["kernelArguments"]
    assert ka == {"shouldExist": ["foo=1", "bar", "baz"], "shouldNotExist": ["quiet"]}


def test_argument_lists_are_concatenated() -> None:
    parent = cfg(
        storage={
            "filesystems": [{"device": "/dev/vdb", "options": ["-L", "x"], "mountOptions": ["ro"]}],
            "files": [{"path": "/f", "append": [{"source": "data:,a"}]}],
            "raid": [{"name": "md0", "options": ["--a"], "devices": ["/dev/a"]}],
            "luks": [{"name": "c", "options": ["--x"], "openOptions": ["o1"]}],
        }
    )
    child = cfg(
        storage={
            "filesystems": [{"device": "/dev/vdb", "options": ["-L", "x"], "mountOptions": ["ro"]}],
            "files": [{"path": "/f", "append": [{"source": "data:,a"}]}],
            "raid": [{"name": "md0", "options": ["--a"], "devices": ["/dev/a", "/dev/b"]}],
            "luks": [{"name": "c", "options": ["--x"], "openOptions": ["o1", "o2"]}],
        }
    )
    st = merge_configs(parent, child)["storage"]
    assert st["filesystems"][0]["options"] == ["-L", "x", "-L", "x"]
    assert st["filesystems"][0]["mountOptions"] == ["ro", "ro"]
    assert st["files"][0]["append"] == [{"source": "data:,a"}, {"source": "data:,a"}]
    assert st["raid"][0]["options"] == ["--a", "--a"]
    assert st["raid"][0]["devices"] == ["/dev/a", "/dev/b"]  # keyed by value
    assert st["luks"][0]["options"] == ["--x", "--x"]
    assert st["luks"][0]["openOptions"] == ["o1", "o2"]


def test_disks_partitions_filesystems_by_their_keys() -> None:
    parent = cfg(
        storage={
            "disks": [
                {
                    "device": "/dev/vdb",
                    "partitions": [{"number": 1, "sizeMiB": 10}, {"label": "data", "sizeMiB": 5}],
                }
            ],
            "filesystems": [{"device": "/dev/vdb1", "format": "ext4"}],
        }
    )
    child = cfg(
        storage={
            "disks": [
                {
                    "device": "/dev/vdb",
                    "wipeTable": True,
                    "partitions": [{"number": 1, "sizeMiB": 20}, {"label": "data", "startMiB": 1}],
                }
            ],
            "filesystems": [
                {"device": "/dev/vdb1", "format": "xfs"},
                {"device": "/dev/vdb2", "format": "ext4"},
            ],
        }
    )
    st = merge_configs(parent, child)["storage"]
    assert st["disks"] == [
        {
            "device": "/dev/vdb",
            "partitions": [
                {"number": 1, "sizeMiB": 20},
                {"label": "data", "sizeMiB": 5, "startMiB": 1},
            ],
            "wipeTable": True,
        }
    ]
    assert [fs["format"] for fs in st["filesystems"]] == ["xfs", "ext4"]


def test_http_header_without_value_removes_parents() -> None:
    parent = cfg(
        storage={
            "files": [
                {
                    "path": "/f",
                    "contents": {
                        "source": "https://example.com/f",
                        "httpHeaders": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    },
                }
            ]
        }
    )
    child = cfg(
        storage={
            "files": [
                {
                    "path": "/f",
                    "contents": {"httpHeaders": [{"name": "A"}, {"name": "B", "value": "3"}]},
                }
            ]
        }
    )
    headers = merge_configs(parent, child)["storage"]["files"][0]["contents"]["httpHeaders"]
    assert headers == [{"name": "B", "value": "3"}]


def test_config_merge_and_ca_resources_by_source() -> None:
    parent = cfg(ignition={"version": "3.3.0", "config": {"merge": [{"source": "http://a"}]}})
    child = cfg(
        ignition={
            "version": "3.3.0",
            "config": {
                "merge": [
                    {"source": "http://a", "verification": {"hash": "sha512-x"}},
                    {"source": "http://b"},
                ]
            },
        }
    )
    merged = merge_configs(parent, child)["ignition"]["config"]["merge"]
    assert merged == [
        {"source": "http://a", "verification": {"hash": "sha512-x"}},
        {"source": "http://b"},
    ]


def test_result_declares_the_newer_version() -> None:
    old = {"ignition": {"version": "3.0.0"}}
    new = {"ignition": {"version": "3.4.0"}}
    assert merge_configs(old, new)["ignition"]["version"] == "3.4.0"
    assert merge_configs(new, old)["ignition"]["version"] == "3.4.0"


def test_ignition_merge_returns_new_object() -> None:
    a = Ignition().add_file("/a", "1")
    b = Ignition().add_file("/b", "2")
    before = a.to_dict()
    m = a.merge(b)
    assert a.to_dict() == before
    assert m is not a
    assert [f["path"] for f in m.to_dict()["storage"]["files"]] == ["/a", "/b"]


def test_merge_with_self_is_idempotent() -> None:
    a = (
        Ignition()
        .add_user("nest", groups=["wheel"], ssh_keys=["k"])
        .add_unit("x.service", "[Service]\n", enabled=True, dropins={"a.conf": "[Unit]\n"})
        .add_kernel_arguments(["a"], ["b"])
        .add_link("/l", "/t")
    )
    assert a.merge(a) == a


def test_merge_accepts_a_plain_dict() -> None:
    a = Ignition().add_ssh_key("nest", "k1")
    m = a.merge(
        {
            "ignition": {"version": "3.0.0"},
            "passwd": {"users": [{"name": "nest", "sshAuthorizedKeys": ["k2"]}]},
        }
    )
    assert m.to_dict()["passwd"]["users"][0]["sshAuthorizedKeys"] == ["k1", "k2"]
    assert m.version == "3.3.0"
