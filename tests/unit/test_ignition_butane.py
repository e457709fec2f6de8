"""The Butane subset: fcos/nestos variants -> Ignition JSON."""

from __future__ import annotations

import hashlib
import json
import textwrap
import urllib.parse

import pytest

from kolapy.errors import BadInputError
from kolapy.ignition import butane_to_ignition, validate

SHA512 = hashlib.sha512(b"tool").hexdigest()


def bu(text: str, source: str | None = "config.bu") -> dict:
    return butane_to_ignition(textwrap.dedent(text), source=source).to_dict()


def bu_error(text: str) -> str:
    with pytest.raises(BadInputError) as e:
        butane_to_ignition(textwrap.dedent(text), source="config.bu")
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.mark.parametrize(
    ("variant", "version", "spec"),
    [
        ("fcos", "1.0.0", "3.0.0"),
        ("fcos", "1.1.0", "3.1.0"),
        ("fcos", "1.2.0", "3.2.0"),
        ("fcos", "1.3.0", "3.2.0"),
        ("fcos", "1.4.0", "3.3.0"),
        ("fcos", "1.5.0", "3.4.0"),
        ("nestos", "1.0.0", "3.3.0"),
        ("nestos", "1.1.0", "3.4.0"),
    ],
)
def test_version_mapping(variant: str, version: str, spec: str) -> None:
    assert bu(f"variant: {variant}\nversion: {version}\n") == {"ignition": {"version": spec}}


def test_full_subset_translates() -> None:
    out = bu(
        """\
        variant: fcos
        version: 1.4.0
        passwd:
          users:
            - name: core
              ssh_authorized_keys: [ssh-ed25519 AAAA one]
              groups: [wheel, docker]
              password_hash: $y$j9T$abc
              home_dir: /var/home/core
              no_create_home: false
          groups:
            - name: devs
              gid: 2000
        storage:
          directories:
            - path: /opt/tools
              mode: 0750
              overwrite: true
          files:
            - path: /etc/hostname
              mode: 0644
              overwrite: true
              contents:
                inline: |
                  node1
            - path: /opt/tools/tool
              user: {name: core}
              group: {id: 0}
              contents:
                source: https://example.com/tool.gz
                compression: gzip
                verification: {hash: sha512-SHA}
                http_headers:
                  - name: Authorization
                    value: Bearer x
              append:
                - inline: more
          links:
            - path: /usr/local/bin/tool
              target: /opt/tools/tool
              hard: false
        systemd:
          units:
            - name: hello.service
              enabled: true
              contents: |
                [Service]
                ExecStart=/bin/echo hi
                [Install]
                WantedBy=multi-user.target
              dropins:
                - name: 10-env.conf
                  contents: |
                    [Service]
                    Environment=A=1
            - name: getty@tty1.service
              mask: true
        kernel_arguments:
          should_exist: [console=ttyS0]
          should_not_exist: [quiet]
        """.replace("SHA", SHA512)
    )
    assert out["ignition"] == {"version": "3.3.0"}
    assert out["passwd"] == {
        "users": [
            {
                "name": "core",
                "sshAuthorizedKeys": ["ssh-ed25519 AAAA one"],
                "groups": ["wheel", "docker"],
                "passwordHash": "$y$j9T$abc",
                "homeDir": "/var/home/core",
                "noCreateHome": False,
            }
        ],
        "groups": [{"name": "devs", "gid": 2000}],
    }
    st = out["storage"]
    assert st["directories"] == [{"path": "/opt/tools", "mode": 0o750, "overwrite": True}]
    hostname, tool = st["files"]
    assert hostname == {
        "path": "/etc/hostname",
        "mode": 0o644,  # YAML 0644 is octal, as in Butane
        "overwrite": True,
        "contents": {"source": "data:,node1%0A"},
    }
    assert tool["contents"] == {
        "source": "https://example.com/tool.gz",
        "compression": "gzip",
        "verification": {"hash": f"sha512-{SHA512}"},
        "httpHeaders": [{"name": "Authorization", "value": "Bearer x"}],
    }
    assert tool["user"] == {"name": "core"} and tool["group"] == {"id": 0}
    assert tool["append"] == [{"source": "data:,more"}]
    assert st["links"] == [
        {"path": "/usr/local/bin/tool", "target": "/opt/tools/tool", "hard": False}
    ]
    hello, getty = out["systemd"]["units"]
    assert hello["enabled"] is True and hello["contents"].startswith("[Service]\n")
    assert hello["dropins"] == [{"name": "10-env.conf", "contents": "[Service]\nEnvironment=A=1\n"}]
    assert getty == {"name": "getty@tty1.service", "mask": True}
    assert out["kernelArguments"] == {"shouldExist": ["console=ttyS0"], "shouldNotExist": ["quiet"]}
    assert validate(out) == []


def test_inline_contents_are_exact() -> None:
    text = 'a b\n"c" #%\u00e9\n'
    files = [{"path": "/x", "contents": {"inline": text}}]
    out = bu("variant: fcos\nversion: 1.0.0\nstorage: " + json.dumps({"files": files}))
    source = out["storage"]["files"][0]["contents"]["source"]
    assert urllib.parse.unquote(source.removeprefix("data:,")) == text


V14 = "variant: fcos\nversion: 1.4.0\n"
LOCAL = "local file {!r} is not supported; inline the contents instead"
SUBSET = "key not supported by kolapy's Butane subset (see docs/ignition.md)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("variant: fcos\nversion: [\n", None),  # YAML syntax error: checked below
        ("- a\n", "config: must be a mapping, not list"),
        ("version: 1.4.0\n", "variant: missing (fcos, nestos or openeuler)"),
        (
            "variant: rhcos\nversion: 1.4.0\n",
            "variant: unsupported variant 'rhcos' (fcos, nestos or openeuler)",
        ),
        ("variant: fcos\n", "version: missing"),
        (
            "variant: fcos\nversion: 1.9.0\n",
            "version: unsupported fcos version '1.9.0'"
            " (kolapy reads 1.0.0, 1.1.0, 1.2.0, 1.3.0, 1.4.0, 1.5.0)",
        ),
        (V14 + "storage: {trees: [{local: x}]}", f"storage.trees: {SUBSET}"),
        (V14 + "boot_device: {mirror: {}}", f"boot_device: {SUBSET}"),
        (
            V14 + "storage: {files: [{path: /x, contents: {local: tool.sh}}]}",
            "storage.files[0].contents.local: " + LOCAL.format("tool.sh"),
        ),
        (
            V14 + "systemd: {units: [{name: a.service, contents_local: a.service}]}",
            "systemd.units[0].contents_local: " + LOCAL.format("a.service"),
        ),
        (
            V14 + "storage: {files: [{path: /x, contents: {inline: a, source: 'data:,b'}}]}",
            "storage.files[0].contents: inline and source are mutually exclusive",
        ),
        (
            V14 + "storage: {files: [{path: /x, mode: '0644'}]}",
            "storage.files[0].mode: must be int, not str '0644'",
        ),
        (V14 + "passwd: {users: {name: core}}", "passwd.users: must be a list, not dict"),
        (
            "variant: fcos\nversion: 1.3.0\nkernel_arguments: {should_exist: [a]}",
            "kernel_arguments: needs fcos 1.4.0 or newer",
        ),
    ],
)
def test_errors_name_the_file_and_key(text: str, message: str | None) -> None:
    msg = bu_error(text)
    if message is None:
        assert msg.startswith("config.bu: invalid Butane config: not YAML: ")
    else:
        assert msg == f"config.bu: invalid Butane config: {message}"


def test_no_source_no_prefix() -> None:
    with pytest.raises(BadInputError) as e:
        butane_to_ignition("variant: fcos\n")
    assert str(e.value) == "invalid Butane config: version: missing"


def test_null_values_are_dropped() -> None:
    out = bu("variant: fcos\nversion: 1.4.0\nstorage:\n  files:\n    - path: /x\n      mode:\n")
    assert out["storage"]["files"] == [{"path": "/x"}]
