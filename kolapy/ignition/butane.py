"""Translate the common subset of Butane (``config.bu``) to Ignition JSON.

Debian has no ``butane``, and kola's external tests ship ``config.bu`` files,
so kolapy reads the usual part itself: users and groups, files (inline or
remote contents), directories, links, systemd units with drop-ins and kernel
arguments, for the ``fcos`` and ``nestos`` variants.  Anything else is a
:class:`BadInputError` naming the key, never silently dropped.
"""

from __future__ import annotations

from typing import Any

import yaml

from kolapy.errors import BadInputError
from kolapy.ignition.dataurl import data_url

# Butane version -> Ignition spec version, per variant.  fcos: Butane's docs.
# nestos: NestOS's Butane documents nestos 1.0.0 -> Ignition 3.3.0; 1.1.0 is
# taken to follow fcos's step (1.5.0 -> 3.4.0).
SPEC_VERSIONS: dict[str, dict[str, str]] = {
    "fcos": {
        "1.0.0": "3.0.0",
        "1.1.0": "3.1.0",
        "1.2.0": "3.2.0",
        "1.3.0": "3.2.0",
        "1.4.0": "3.3.0",
        "1.5.0": "3.4.0",
    },
    "nestos": {"1.0.0": "3.3.0", "1.1.0": "3.4.0"},
}
# openEuler's Butane fork names NestOS's variant after the distribution; kolapy
# takes it to mean the same versions as ``nestos``.
SPEC_VERSIONS["openeuler"] = dict(SPEC_VERSIONS["nestos"])
VARIANTS = tuple(SPEC_VERSIONS)
_VARIANT_NAMES = "fcos, nestos or openeuler"

_STR, _INT, _BOOL = "str", "int", "bool"
_OWNER = {"id": _INT, "name": _STR}
_HEADER = {"name": _STR, "value": _STR}
_RESOURCE = {
    "inline": _STR,
    "source": _STR,
    "local": _STR,
    "compression": _STR,
    "verification": {"hash": _STR},
    "http_headers": [_HEADER],
}
_NODE = {"path": _STR, "overwrite": _BOOL, "user": _OWNER, "group": _OWNER}
_CONFIG_REF = {"source": _STR, "inline": _STR, "compression": _STR,
               "verification": {"hash": _STR}, "http_headers": [_HEADER]}

# What kolapy accepts, with each value's shape: a type name, a dict (object
# of these keys) or a one-item list (list of that shape).
_SCHEMA: dict[str, Any] = {
    "variant": _STR,
    "version": _STR,
    "ignition": {
        "config": {"merge": [_CONFIG_REF], "replace": _CONFIG_REF},
        "timeouts": {"http_response_headers": _INT, "http_total": _INT},
    },
    "passwd": {
        "users": [
            {
                "name": _STR,
                "password_hash": _STR,
                "ssh_authorized_keys": [_STR],
                "uid": _INT,
                "gecos": _STR,
                "home_dir": _STR,
                "no_create_home": _BOOL,
                "primary_group": _STR,
                "groups": [_STR],
                "no_user_group": _BOOL,
                "no_log_init": _BOOL,
                "shell": _STR,
                "should_exist": _BOOL,
                "system": _BOOL,
            }
        ],
        "groups": [
            {
                "name": _STR,
                "gid": _INT,
                "password_hash": _STR,
                "should_exist": _BOOL,
                "system": _BOOL,
            }
        ],
    },
    "storage": {
        "files": [{**_NODE, "contents": _RESOURCE, "append": [_RESOURCE], "mode": _INT}],
        "directories": [{**_NODE, "mode": _INT}],
        "links": [{**_NODE, "target": _STR, "hard": _BOOL}],
        "filesystems": [
            {
                "device": _STR,
                "format": _STR,
                "path": _STR,
                "label": _STR,
                "uuid": _STR,
                "wipe_filesystem": _BOOL,
                "options": [_STR],
                "mount_options": [_STR],
                "with_mount_unit": _BOOL,
            }
        ],
    },
    "systemd": {
        "units": [
            {
                "name": _STR,
                "enabled": _BOOL,
                "mask": _BOOL,
                "contents": _STR,
                "contents_local": _STR,
                "dropins": [{"name": _STR, "contents": _STR, "contents_local": _STR}],
            }
        ]
    },
    "kernel_arguments": {"should_exist": [_STR], "should_not_exist": [_STR]},
}

_LOCAL_KEYS = ("local", "contents_local")
_TYPES = {_STR: (str,), _INT: (int,), _BOOL: (bool,)}


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.capitalize() for part in rest)


class _Translator:
    def __init__(self, source: str | None) -> None:
        self.prefix = f"{source}: " if source else ""

    def fail(self, where: str, problem: str) -> BadInputError:
        return BadInputError(f"{self.prefix}invalid Butane config: {where}: {problem}")

    def convert(self, value: Any, shape: Any, where: str) -> Any:
        if isinstance(shape, dict):
            return self._object(value, shape, where)
        if isinstance(shape, list):
            if not isinstance(value, list):
                raise self.fail(where, f"must be a list, not {type(value).__name__}")
            return [self.convert(v, shape[0], f"{where}[{i}]") for i, v in enumerate(value)]
        ok = isinstance(value, _TYPES[shape]) and not (shape == _INT and isinstance(value, bool))
        if not ok:
            raise self.fail(where, f"must be {shape}, not {type(value).__name__} {value!r}")
        return value

    def _object(self, value: Any, shape: dict[str, Any], where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where or "config", f"must be a mapping, not {type(value).__name__}")
        out: dict[str, Any] = {}
        for key, item in value.items():
            here = f"{where}.{key}" if where else str(key)
            if key not in shape:
                raise self.fail(
                    here, "key not supported by kolapy's Butane subset (see docs/ignition.md)"
                )
            if key in _LOCAL_KEYS:
                raise self.fail(
                    here,
                    f"local file {item!r} is not supported; inline the contents instead",
                )
            if item is None:
                continue
            converted = self.convert(item, shape[key], here)
            if key == "inline":
                out["source"] = data_url(converted)
            else:
                out[_camel(key)] = converted
        if "inline" in value and "source" in value:
            raise self.fail(where, "inline and source are mutually exclusive")
        return out


def mount_unit_name(path: str) -> str:
    """systemd's unit name for a mount point (``systemd-escape --path --suffix=mount``)."""
    parts = [p for p in path.strip("/").split("/") if p]
    escaped = []
    for part in parts:
        out = ""
        for i, ch in enumerate(part):
            if ch.isascii() and (ch.isalnum() or ch in ":_" or (ch == "." and i > 0)):
                out += ch
            else:
                out += "".join(f"\\x{b:02x}" for b in ch.encode())
        escaped.append(out)
    return ("-".join(escaped) or "-") + ".mount"


def _mount_units(body: dict[str, Any], tr: _Translator) -> None:
    """Butane's ``with_mount_unit``: a mount unit per filesystem that asks for one."""
    for i, fs in enumerate(body.get("storage", {}).get("filesystems") or []):
        if not fs.pop("withMountUnit", False):
            continue
        where = f"storage.filesystems[{i}]"
        if not fs.get("path") or not fs.get("format"):
            raise tr.fail(where, "with_mount_unit needs path and format")
        options = ",".join(fs.get("mountOptions") or ())
        text = (
            "# Generated by kolapy's Butane translation\n[Unit]\nBefore=local-fs.target\n\n"
            f"[Mount]\nWhere={fs['path']}\nWhat={fs['device']}\nType={fs['format']}\n"
            + (f"Options={options}\n" if options else "")
            + "\n[Install]\nRequiredBy=local-fs.target\n"
        )
        units = body.setdefault("systemd", {}).setdefault("units", [])
        units.append({"name": mount_unit_name(fs["path"]), "enabled": True, "contents": text})


def butane_to_dict(yaml_text: str, *, source: str | None = None) -> dict[str, Any]:
    """Translate a Butane document (variant fcos or nestos) to an Ignition config dict.

    ``source`` (a file name) prefixes error messages.  :class:`~kolapy.ignition.Ignition`
    wraps the result (``butane_to_ignition``, ``Ignition.load``); this module does not
    import it, so the two never import each other.
    """
    tr = _Translator(source)
    try:
        doc = yaml.safe_load(yaml_text)
    except yaml.YAMLError as e:
        raise BadInputError(
            f"{tr.prefix}invalid Butane config: not YAML: {' '.join(str(e).split())}"
        ) from None
    if not isinstance(doc, dict):
        raise tr.fail("config", f"must be a mapping, not {type(doc).__name__}")
    variant, version = doc.get("variant"), doc.get("version")
    if variant is None:
        raise tr.fail("variant", f"missing ({_VARIANT_NAMES})")
    if variant not in SPEC_VERSIONS:
        raise tr.fail("variant", f"unsupported variant {variant!r} ({_VARIANT_NAMES})")
    if version is None:
        raise tr.fail("version", "missing")
    spec = SPEC_VERSIONS[variant].get(str(version))
    if spec is None:
        known = ", ".join(SPEC_VERSIONS[variant])
        raise tr.fail(
            "version", f"unsupported {variant} version {version!r} (kolapy reads {known})"
        )
    body = tr.convert(doc, _SCHEMA, "")
    del body["variant"], body["version"]
    if "kernelArguments" in body and spec < "3.3.0":
        raise tr.fail("kernel_arguments", f"needs {variant} 1.4.0 or newer")
    _mount_units(body, tr)
    body["ignition"] = {"version": spec, **body.get("ignition", {})}
    return body
