"""Validation before boot: one-line errors naming the source, warnings, ignition-validate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kolapy.errors import BadInputError
from kolapy.ignition import Ignition, validate
from kolapy.ignition import validation as validate_mod
from kolapy.ignition.validation import _validator_path

HAVE_VALIDATOR = _validator_path() is not None
needs_validator = pytest.mark.skipif(not HAVE_VALIDATOR, reason="ignition-validate not installed")


def v33(**sections: Any) -> dict[str, Any]:
    return {"ignition": {"version": "3.3.0"}, **sections}


def error_of(config: Any, **kw: Any) -> str:
    with pytest.raises(BadInputError) as e:
        validate(config, **kw)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# -- structural errors: exact one-line messages ------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            "not json",
            "cfg.ign: invalid Ignition config: not JSON: Expecting value: line 1 column 1 (char 0)",
        ),
        ("[1, 2]", "cfg.ign: invalid Ignition config: not a JSON object (got list)"),
        (
            "{}",
            "cfg.ign: invalid Ignition config: ignition.version: missing"
            ' (a config starts {"ignition": {"version": "3.3.0"}})',
        ),
        (
            '{"ignition": []}',
            "cfg.ign: invalid Ignition config: ignition: must be an object, not a list",
        ),
        ('{"ignition": {}}', "cfg.ign: invalid Ignition config: ignition.version: missing"),
        (
            '{"ignition": {"version": 3}}',
            "cfg.ign: invalid Ignition config: ignition.version: must be a string, not an integer",
        ),
        (
            '{"ignition": {"version": "2.2.0"}}',
            "cfg.ign: invalid Ignition config: ignition.version: unsupported version '2.2.0'"
            " (kolapy reads 3.0.0 to 3.4.0)",
        ),
    ],
)
def test_top_level_errors(config: str, message: str) -> None:
    assert error_of(config, source="cfg.ign") == message


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"storage": []}, "storage: must be an object, not a list"),
        (
            {"storage": {"files": [{"path": "etc/x"}]}},
            "storage.files[0].path: must be an absolute path, not 'etc/x'",
        ),
        ({"storage": {"files": [{"mode": 420}]}}, "storage.files[0].path: missing"),
        (
            {"storage": {"files": [{"path": "/x", "mode": "0644"}]}},
            "storage.files[0].mode: must be an integer, not a string",
        ),
        (
            {"storage": {"files": [{"path": "/x", "mode": True}]}},
            "storage.files[0].mode: must be an integer, not a boolean",
        ),
        (
            {"storage": {"files": [{"path": "/x", "mode": 70000}]}},
            "storage.files[0].mode: 70000 is not a file mode (0 to 0o7777)",
        ),
        (
            {"storage": {"files": [{"path": "/x", "contents": {"source": 5}}]}},
            "storage.files[0].contents.source: must be a string, not an integer",
        ),
        (
            {"storage": {"files": [{"path": "/x", "contents": {"source": "ftp://h/x"}}]}},
            "storage.files[0].contents.source: unsupported URL scheme in 'ftp://h/x'",
        ),
        (
            {"storage": {"files": [{"path": "/x", "contents": {"source": "data:,a b"}}]}},
            "storage.files[0].contents.source:"
            " data URL has a character that must be percent-encoded: ' '",
        ),
        (
            {"storage": {"files": [{"path": "/x", "contents": {"source": "data:;base64,!!"}}]}},
            "storage.files[0].contents.source: data URL says base64 but its data is not base64",
        ),
        (
            {"storage": {"files": [{"path": "/x", "contents": {"source": "data:abc"}}]}},
            "storage.files[0].contents.source: data URL has no comma before its data",
        ),
        (
            {"storage": {"files": [{"path": "/x", "overwrite": True}]}},
            "storage.files[0].overwrite: must be false when contents.source is unset",
        ),
        ({"storage": {"files": {"path": "/x"}}}, "storage.files: must be a list, not an object"),
        ({"storage": {"files": ["/x"]}}, "storage.files[0]: must be an object, not a string"),
        (
            {"storage": {"files": [{"path": "/x"}], "links": [{"path": "/x", "target": "/y"}]}},
            "storage.links[0]: duplicate entry for path '/x'",
        ),
        ({"storage": {"links": [{"path": "/l"}]}}, "storage.links[0].target: missing"),
        (
            {"storage": {"directories": [{"path": "/d", "mode": 0o755, "user": {"name": 1}}]}},
            "storage.directories[0].user.name: must be a string, not an integer",
        ),
        (
            {"storage": {"filesystems": [{"device": "vdb"}]}},
            "storage.filesystems[0].device: must be an absolute path, not 'vdb'",
        ),
        (
            {"systemd": {"units": [{"name": "foo"}]}},
            "systemd.units[0].name: 'foo' has no unit type suffix (.service, .timer, ...)",
        ),
        (
            {"systemd": {"units": [{"name": 7}]}},
            "systemd.units[0].name: must be a string, not an integer",
        ),
        (
            {"systemd": {"units": [{"name": "a.service", "enabled": "yes"}]}},
            "systemd.units[0].enabled: must be a boolean, not a string",
        ),
        (
            {"systemd": {"units": [{"name": "a.service", "dropins": [{"name": "x"}]}]}},
            "systemd.units[0].dropins[0].name: drop-in 'x' must end in .conf",
        ),
        (
            {"systemd": {"units": [{"name": "a.service"}, {"name": "a.service"}]}},
            "systemd.units[1]: duplicate entry 'a.service'",
        ),
        ({"passwd": {"users": [{"name": None}]}}, "passwd.users[0].name: missing"),
        (
            {"passwd": {"users": [{"name": ["nest"]}]}},
            "passwd.users[0].name: must be a string, not a list",
        ),
        (
            {"passwd": {"users": [{"name": "nest", "sshAuthorizedKeys": "k"}]}},
            "passwd.users[0].sshAuthorizedKeys: must be a list, not a string",
        ),
        (
            {"passwd": {"users": [{"name": "a"}, {"name": "a"}]}},
            "passwd.users[1]: duplicate entry 'a'",
        ),
        (
            {"kernelArguments": {"shouldExist": [1]}},
            "kernelArguments.shouldExist[0]: must be a string, not an integer",
        ),
    ],
)
def test_section_errors(sections: dict[str, Any], message: str) -> None:
    assert error_of(v33(**sections), source="t.ign", external=False) == (
        f"t.ign: invalid Ignition config: {message}"
    )


def test_kernel_arguments_need_3_3() -> None:
    cfg = {"ignition": {"version": "3.2.0"}, "kernelArguments": {"shouldExist": ["a"]}}
    assert error_of(cfg, external=False) == (
        "invalid Ignition config: kernelArguments: needs ignition.version 3.3.0 or newer"
    )


def test_several_errors_report_the_first_and_count() -> None:
    cfg = v33(storage={"files": [{"path": "a"}, {"path": "b"}]})
    assert error_of(cfg, external=False) == (
        "invalid Ignition config: storage.files[0].path: must be an absolute path, not 'a'"
        " (and 1 more)"
    )


def test_source_from_loaded_file(tmp_path: Path) -> None:
    path = tmp_path / "config.ign"
    path.write_text(json.dumps(v33(systemd={"units": [{"name": "x"}]})))
    msg = error_of(path)
    assert msg.startswith(f"{path}: invalid Ignition config: systemd.units[0].name:")
    assert error_of(Ignition.load(path)) == msg


def test_null_means_unset() -> None:
    cfg = v33(storage={"files": [{"path": "/x", "mode": None, "contents": None}]}, systemd=None)
    assert validate(cfg) == []


# -- warnings ---------------------------------------------------------------


def test_unused_key_is_a_warning_unless_allowed() -> None:
    cfg = v33(storage={"files": [{"path": "/x", "owner": "nest"}]}, extra=1)
    assert error_of(cfg, source="w.ign", external=False) == (
        "w.ign: Ignition config has warnings: storage.files[0].owner: unused key "
        "(not in the Ignition spec) (and 1 more) (pass allow_warnings to accept)"
    )
    assert validate(cfg, source="w.ign", allow_warnings=True, external=False) == [
        "w.ign: storage.files[0].owner: unused key (not in the Ignition spec)",
        "w.ign: extra: unused key (not in the Ignition spec)",
    ]


def test_special_mode_bits_warn_before_3_4() -> None:
    old = v33(storage={"files": [{"path": "/x", "mode": 0o4755}]})
    assert validate(old, allow_warnings=True, external=False) == [
        "storage.files[0].mode: setuid/setgid/sticky bits are not supported before spec 3.4.0"
    ]
    new = {"ignition": {"version": "3.4.0"}, "storage": {"files": [{"path": "/x", "mode": 0o4755}]}}
    assert validate(new) == []


# -- ignition-validate --------------------------------------------------------


@needs_validator
def test_external_validator_errors_become_bad_input() -> None:
    # kolapy's own checks do not parse unit files; ignition-validate does.
    cfg = v33(systemd={"units": [{"name": "a.service", "contents": "[Unit]\nFoo\n"}]})
    assert validate(cfg, external=False) == []
    msg = error_of(cfg, source="u.ign")
    assert msg.startswith(
        "u.ign: invalid Ignition config: systemd.units[0].contents: invalid unit content"
    )
    assert msg.endswith("(ignition-validate)")


@needs_validator
def test_external_validator_warns_enabled_unit_without_install() -> None:
    cfg = v33(
        systemd={"units": [{"name": "a.service", "contents": "[Service]\n", "enabled": True}]}
    )
    assert validate(cfg, allow_warnings=True) == [
        'systemd.units[0].contents: unit "a.service" is enabled, but has no install section'
        " so enable does nothing (ignition-validate)"
    ]


@needs_validator
def test_external_validator_warnings_are_deduplicated() -> None:
    cfg = v33(storage={"files": [{"path": "/x", "mode": 0o2755}]}, foo=1)
    warnings = validate(cfg, allow_warnings=True)
    assert warnings == [
        "storage.files[0].mode: setuid/setgid/sticky bits are not supported before spec 3.4.0",
        "foo: unused key (not in the Ignition spec)",
    ]


@needs_validator
def test_external_validator_skipped_for_3_4(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(validate_mod, "_run_external", lambda *a: calls.append(a))
    assert validate({"ignition": {"version": "3.4.0"}}) == []
    assert calls == []
    assert validate({"ignition": {"version": "3.3.0"}}) == []
    assert len(calls) == 1


def test_missing_validator_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate_mod, "IGNITION_VALIDATE", "/nonexistent/ignition-validate")
    monkeypatch.setenv("PATH", "/nonexistent")
    cfg = v33(systemd={"units": [{"name": "a.service", "contents": "[Unit]\nFoo\n"}]})
    assert validate(cfg) == []


def test_external_output_parsing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "ignition-validate"
    fake.write_text(
        "#!/bin/sh\n"
        "echo 'warning at $.storage.files.0.mode, line 1 col 73: some warning'\n"
        "echo 'error at $.passwd.users.1, line 1 col 66: duplicate entry defined'\n"
        "exit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(validate_mod, "IGNITION_VALIDATE", str(fake))
    assert error_of(v33(), source="f.ign") == (
        "f.ign: invalid Ignition config: passwd.users[1]:"
        " duplicate entry defined (ignition-validate)"
    )
