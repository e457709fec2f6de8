"""Validate an Ignition config before any VM boots.

A bad config must be a clear one-line error at once, never a ten-minute boot
timeout.  Checks are kolapy's own (types, paths, unit names, data URLs,
duplicates), then Debian's/Fedora's ``ignition-validate`` when it is
installed and reads the config's spec version.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kolapy.errors import BadInputError
from kolapy.ignition.config import Ignition
from kolapy.ignition.schema import KINDS, REQUIRED, UNIT_SUFFIXES, URL_SCHEMES
from kolapy.ignition.spec import EXTERNAL_VALIDATOR_MAX, SUPPORTED_VERSIONS, version_tuple

log = logging.getLogger(__name__)

IGNITION_VALIDATE = "/usr/bin/ignition-validate"
EXTERNAL_TIMEOUT = 30.0

_URIC = re.compile(r"[A-Za-z0-9;/?:@&=+$,\-_.!~*'()%]*")
_JSON_TYPES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    dict: "an object",
    list: "a list",
    type(None): "null",
}
_WANT = {"str": "a string", "int": "an integer", "bool": "a boolean"}


@dataclass
class _Report:
    version: tuple[int, int, int]
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def validate(
    config: Ignition | Mapping[str, Any] | str | bytes | os.PathLike[str],
    *,
    source: str | None = None,
    allow_warnings: bool = False,
    external: bool | None = None,
) -> list[str]:
    """Check ``config``; return its warnings, or raise :class:`BadInputError`.

    ``config`` is an :class:`Ignition`, a dict, JSON text (``str``/``bytes``)
    or a path (``Path``) to a ``.ign``/``.bu`` file.  The error is one line:
    ``<source>: invalid Ignition config: <where>: <problem>``.  Warnings (e.g.
    unused keys) are an error too unless ``allow_warnings`` (kola's
    AllowConfigWarnings).  ``external``: run ``ignition-validate`` (None: when
    installed; always skipped for specs it cannot read).
    """
    cfg = _coerce(config, source)
    src = source or cfg.source
    prefix = f"{src}: " if src else ""
    data = cfg.to_dict()
    report = _check_version(data, prefix)
    _walk(data, "Config", "", report)
    _check_config(data, report)
    if not report.errors and _want_external(external, report.version):
        _run_external(cfg, report)
    if report.errors:
        more = f" (and {len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
        raise BadInputError(f"{prefix}invalid Ignition config: {report.errors[0]}{more}")
    warnings = [f"{prefix}{w}" for w in report.warnings]
    if warnings and not allow_warnings:
        raise BadInputError(
            f"{prefix}Ignition config has warnings: {report.warnings[0]}"
            + (f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else "")
            + " (pass allow_warnings to accept)"
        )
    return warnings


def _coerce(config: Any, source: str | None) -> Ignition:
    if isinstance(config, Ignition):
        return config
    if isinstance(config, str | bytes):
        return Ignition.from_json(config, source=source)
    if isinstance(config, os.PathLike):
        return Ignition.load(config)
    return Ignition.from_dict(config, source=source)


def _type_name(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _check_version(data: dict[str, Any], prefix: str) -> _Report:
    def fail(problem: str) -> BadInputError:
        return BadInputError(f"{prefix}invalid Ignition config: {problem}")

    ign = data.get("ignition")
    if ign is None:
        raise fail('ignition.version: missing (a config starts {"ignition": {"version": "3.3.0"}})')
    if not isinstance(ign, dict):
        raise fail(f"ignition: must be an object, not {_type_name(ign)}")
    version = ign.get("version")
    if version is None:
        raise fail("ignition.version: missing")
    if not isinstance(version, str):
        raise fail(f"ignition.version: must be a string, not {_type_name(version)}")
    if version not in SUPPORTED_VERSIONS:
        raise fail(
            f"ignition.version: unsupported version {version!r} "
            f"(kolapy reads {SUPPORTED_VERSIONS[0]} to {SUPPORTED_VERSIONS[-1]})"
        )
    return _Report(version_tuple(version))


def _join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _walk(value: Any, kind: str, where: str, report: _Report) -> None:
    """Type-check ``value`` as ``kind``; record problems under ``where``."""
    if kind.startswith("["):
        if not isinstance(value, list):
            report.errors.append(f"{where}: must be a list, not {_type_name(value)}")
            return
        for i, item in enumerate(value):
            _walk(item, kind[1:-1], _join(where, i), report)
        return
    if kind in _WANT:
        ok = isinstance(value, str if kind == "str" else bool if kind == "bool" else int)
        if kind == "int" and isinstance(value, bool):
            ok = False  # JSON true is not a number, though Python says so
        if not ok:
            report.errors.append(f"{where}: must be {_WANT[kind]}, not {_type_name(value)}")
        return
    if not isinstance(value, dict):
        report.errors.append(f"{where or 'config'}: must be an object, not {_type_name(value)}")
        return
    known = KINDS[kind]
    before = len(report.errors)
    for key in REQUIRED.get(kind, ()):
        if value.get(key) is None:
            report.errors.append(f"{_join(where, key)}: missing")
    for key, item in value.items():
        if key not in known:
            report.warnings.append(f"{_join(where, key)}: unused key (not in the Ignition spec)")
        elif item is not None:  # JSON null = "not set", as Ignition reads it
            _walk(item, known[key], _join(where, key), report)
    if len(report.errors) == before and kind in _SEMANTIC:
        _SEMANTIC[kind](value, where, report)


# -- per-kind checks, run once the object's types are right ------------------


def _check_node(node: dict[str, Any], where: str, report: _Report) -> None:
    if not node["path"].startswith("/"):
        report.errors.append(f"{where}.path: must be an absolute path, not {node['path']!r}")
    mode = node.get("mode")
    if mode is not None:
        if not 0 <= mode <= 0o7777:
            report.errors.append(f"{where}.mode: {mode} is not a file mode (0 to 0o7777)")
        elif mode & 0o7000 and report.version < (3, 4, 0):
            report.warnings.append(
                f"{where}.mode: setuid/setgid/sticky bits are not supported before spec 3.4.0"
            )


def _check_file(node: dict[str, Any], where: str, report: _Report) -> None:
    _check_node(node, where, report)
    source = (node.get("contents") or {}).get("source")
    if node.get("overwrite") is True and source is None:
        report.errors.append(f"{where}.overwrite: must be false when contents.source is unset")


def _check_link(node: dict[str, Any], where: str, report: _Report) -> None:
    _check_node(node, where, report)
    if node.get("target") is None:
        report.errors.append(f"{where}.target: missing")


def _check_unit(unit: dict[str, Any], where: str, report: _Report) -> None:
    if not unit["name"].endswith(UNIT_SUFFIXES):
        report.errors.append(
            f"{where}.name: {unit['name']!r} has no unit type suffix (.service, .timer, ...)"
        )
    _check_dups(unit.get("dropins"), ("name",), f"{where}.dropins", report)


def _check_dropin(dropin: dict[str, Any], where: str, report: _Report) -> None:
    if not dropin["name"].endswith(".conf"):
        report.errors.append(f"{where}.name: drop-in {dropin['name']!r} must end in .conf")


def _check_resource(res: dict[str, Any], where: str, report: _Report) -> None:
    source = res.get("source")
    if source is None:
        return
    scheme = urllib.parse.urlsplit(source).scheme if ":" in source else ""
    if scheme not in URL_SCHEMES:
        report.errors.append(f"{where}.source: unsupported URL scheme in {source[:60]!r}")
    elif scheme == "data":
        problem = _data_url_problem(source)
        if problem:
            report.errors.append(f"{where}.source: {problem}")


def _data_url_problem(url: str) -> str | None:
    head, comma, payload = url[len("data:") :].partition(",")
    if not comma:
        return "data URL has no comma before its data"
    if not _URIC.fullmatch(payload):
        bad = next(c for c in payload if not _URIC.fullmatch(c))
        return f"data URL has a character that must be percent-encoded: {bad!r}"
    if head.endswith(";base64"):
        try:
            base64.b64decode(urllib.parse.unquote(payload), validate=True)
        except binascii.Error:
            return "data URL says base64 but its data is not base64"
    return None


def _check_path_field(obj: dict[str, Any], where: str, report: _Report, key: str) -> None:
    value = obj.get(key)
    if isinstance(value, str) and not value.startswith("/"):
        report.errors.append(f"{where}.{key}: must be an absolute path, not {value!r}")


def _check_disk(disk: dict[str, Any], where: str, report: _Report) -> None:
    _check_path_field(disk, where, report, "device")


def _check_filesystem(fs: dict[str, Any], where: str, report: _Report) -> None:
    _check_path_field(fs, where, report, "device")
    _check_path_field(fs, where, report, "path")


_Check = Callable[[dict[str, Any], str, _Report], None]
_SEMANTIC: dict[str, _Check] = {
    "File": _check_file,
    "Directory": _check_node,
    "Link": _check_link,
    "Unit": _check_unit,
    "Dropin": _check_dropin,
    "Resource": _check_resource,
    "Disk": _check_disk,
    "Filesystem": _check_filesystem,
}


def _check_dups(items: Any, keys: tuple[str, ...], where: str, report: _Report) -> None:
    if not isinstance(items, list):
        return
    seen: set[str] = set()
    for i, item in enumerate(items):
        k = next((item.get(k) for k in keys if isinstance(item, dict) and k in item), None)
        if not isinstance(k, str):
            continue
        if k in seen:
            report.errors.append(f"{_join(where, i)}: duplicate entry {k!r}")
        seen.add(k)


def _check_config(data: dict[str, Any], report: _Report) -> None:
    """Checks across lists: duplicates, and kernelArguments' minimum spec."""
    if report.errors:
        return  # types first: these checks assume them
    storage = data.get("storage") or {}
    nodes: set[str] = set()
    for section in ("files", "directories", "links"):
        for i, node in enumerate(storage.get(section) or []):
            if node["path"] in nodes:  # one key space, as in Ignition's merge
                report.errors.append(
                    f"storage.{section}[{i}]: duplicate entry for path {node['path']!r}"
                )
            nodes.add(node["path"])
    _check_dups((data.get("systemd") or {}).get("units"), ("name",), "systemd.units", report)
    passwd = data.get("passwd") or {}
    _check_dups(passwd.get("users"), ("name",), "passwd.users", report)
    _check_dups(passwd.get("groups"), ("name",), "passwd.groups", report)
    if data.get("kernelArguments") is not None and report.version < (3, 3, 0):
        report.errors.append("kernelArguments: needs ignition.version 3.3.0 or newer")


# -- ignition-validate --------------------------------------------------------


def _validator_path() -> str | None:
    if os.access(IGNITION_VALIDATE, os.X_OK):
        return IGNITION_VALIDATE
    return shutil.which("ignition-validate")


def _want_external(external: bool | None, version: tuple[int, int, int]) -> bool:
    if external is False or version[:2] > EXTERNAL_VALIDATOR_MAX:
        return False  # Debian's 2.14 would reject a 3.4 config it cannot read
    return _validator_path() is not None


_EXTERNAL_LINE = re.compile(r"^(error|warning) at (?:(\$[^,]*), )?line \d+ col \d+: (.*)$")


def _json_path(dollar: str | None) -> str:
    if not dollar or dollar == "$":
        return "config"
    parts = dollar.removeprefix("$.").split(".")
    out = ""
    for part in parts:
        out = _join(out, int(part) if part.isdigit() else part)
    return out


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _run_external(cfg: Ignition, report: _Report) -> None:
    exe = _validator_path()
    assert exe is not None
    # null means "unset" to Ignition too, but its validator then warns that its
    # context tree does not match: drop them, the meaning is the same.
    clean = Ignition.from_dict(_without_nulls(cfg.to_dict()))
    with tempfile.TemporaryDirectory(prefix="kolapy-ign-") as tmp:
        path = clean.write(Path(tmp) / "config.ign")
        try:
            proc = subprocess.run(
                [exe, str(path)],
                capture_output=True,
                text=True,
                timeout=EXTERNAL_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            log.warning("ignition-validate could not run, skipped: %s", e)
            return
    own = {w.split(": ", 1)[0] for w in report.warnings}
    for line in (proc.stdout + proc.stderr).splitlines():
        m = _EXTERNAL_LINE.match(line.strip())
        if m is None:
            if line.strip() and proc.returncode != 0:
                report.errors.append(f"ignition-validate: {line.strip()}")
            continue
        where, problem = _json_path(m[2]), m[3]
        if m[1] == "error":
            report.errors.append(f"{where}: {problem} (ignition-validate)")
        elif where not in own:  # same spot already reported by our own checks
            report.warnings.append(f"{where}: {problem} (ignition-validate)")
    if proc.returncode != 0 and not report.errors:
        report.errors.append(f"ignition-validate failed with exit code {proc.returncode}")
