"""kola external-test metadata: ``kola.json`` or inline in the executable.

kola (mantle/kola/harness.go) reads, in this order of precedence:

* inline metadata in the first 8 KiB of the executable, either one line
  ``# kola: {json}`` or a line ``## kola:`` followed by lines starting with
  ``## `` holding YAML;
* otherwise ``kola.json`` beside the executable.

Unknown keys are an error (:class:`~kolapy.meta.MetadataError`, exit 2) naming
the file and the key.  Keys kola knows but kolapy cannot honour on QEMU are
*gaps*: the test is listed and reported as SKIP naming the feature.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kolapy.meta import DEFAULT_TIMEOUT_S, MetadataError, parse_disk

INLINE_LIMIT = 8192
"""kola reads inline metadata from the first 8 KiB of the executable."""
JSON_PREFIX = "# kola:"
YAML_PREFIX = "## kola:"

# kola key -> kind; the kinds decide validation and meaning.
_STRING_KEYS = ("architectures", "platforms", "distros", "tags", "requiredTag", "description",
                "appendKernelArgs", "appendFirstbootKernelArgs", "primaryDisk", "instanceType",
                "creationDate", "bootFrom")
_INT_KEYS = ("minMemory", "minDisk", "additionalNics", "timeoutMin")
_BOOL_KEYS = ("exclusive", "allowConfigWarnings", "noInstanceCreds", "injectContainer",
              "numaNodes")
_LIST_KEYS = ("additionalDisks", "conflicts", "bindMountHostRO", "requiredHostPorts")
KEYS = frozenset(_STRING_KEYS + _INT_KEYS + _BOOL_KEYS + _LIST_KEYS)
"""Every key kola's externalTestMeta accepts."""

# Keys kola accepts that kolapy cannot honour on QEMU: set -> SKIP with this reason.
_GAPS: dict[str, str] = {
    "primaryDisk": "primaryDisk (a custom primary disk) is not supported by kolapy",
    "injectContainer": "injectContainer (the ostree container of a cosa build) is not "
                       "available to kolapy",
    "numaNodes": "numaNodes (NUMA guest topology) is not supported by kolapy",
    "bindMountHostRO": "bindMountHostRO (virtiofs host mounts) is not supported by kolapy",
    "requiredHostPorts": "requiredHostPorts is not supported by kolapy",
    "bootFrom": "bootFrom (booting from another device) is not supported by kolapy",
}
# Cloud-only keys: kola ignores them on QEMU, so does kolapy.
_QEMU_NOOP = frozenset({"instanceType", "noInstanceCreds", "creationDate"})


@dataclass(frozen=True)
class ExtMeta:
    """One external test's metadata: marker keywords for ``@kola`` plus gaps.

    ``values`` are :mod:`kolapy.meta` keywords (``architectures``, ``min_memory``,
    ...) without ``name``; ``gaps`` name the features kolapy lacks (SKIP reasons);
    ``source`` is where the metadata came from (for messages).
    """

    values: Mapping[str, Any]
    gaps: tuple[str, ...] = ()
    source: str = ""
    timeout_min: int = 0
    """``timeoutMin`` as written (0: kola's default)."""

    @property
    def exclusive(self) -> bool:
        """kola's default is exclusive."""
        return bool(self.values.get("exclusive", True))


def read_inline(executable: Path) -> tuple[dict[str, Any], str] | None:
    """The raw inline metadata of ``executable`` and its form, or None when it has none.

    Raises :class:`MetadataError` for malformed JSON/YAML or both forms in one file.
    """
    with executable.open("rb") as f:
        head = f.read(INLINE_LIMIT)
    lines = head.decode("utf-8", errors="replace").splitlines(keepends=True)
    if len(head) == INLINE_LIMIT and lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]  # kola reads whole lines only
    yaml_lines: list[str] | None = None
    for line in lines:
        if line.startswith(JSON_PREFIX):
            if yaml_lines is not None:
                raise MetadataError(f"{executable}: both '{YAML_PREFIX}' and '{JSON_PREFIX}' "
                                    "metadata")
            text = line[len(JSON_PREFIX):].strip()
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise MetadataError(f"{executable}: invalid inline kola JSON: {exc}") from None
            return _mapping(data, executable), "json"
        if line.startswith(YAML_PREFIX):
            if yaml_lines is not None:
                raise MetadataError(f"{executable}: more than one '{YAML_PREFIX}' line")
            yaml_lines = []
            continue
        if yaml_lines is not None:
            if not line.startswith("## "):
                break
            yaml_lines.append(line[3:])
    if yaml_lines is None:
        return None
    try:
        data = yaml.safe_load("".join(yaml_lines)) or {}
    except yaml.YAMLError as exc:
        raise MetadataError(
            f"{executable}: invalid inline kola YAML: {' '.join(str(exc).split())}"
        ) from None
    return _mapping(data, executable), "yaml"


def _mapping(data: Any, where: Path) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise MetadataError(f"{where}: kola metadata must be a mapping, not {type(data).__name__}")
    return data


def read_kola_json(path: Path) -> dict[str, Any]:
    """The raw contents of a ``kola.json``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MetadataError(f"{path}: invalid kola.json: {exc}") from None
    return _mapping(data, path)


def load_metadata(executable: Path, kola_json: Path | None) -> ExtMeta:
    """The metadata of one test: inline in ``executable``, else ``kola_json``, else defaults."""
    inline = read_inline(executable)
    if inline is not None:
        return parse_metadata(inline[0], str(executable))
    if kola_json is not None:
        return parse_metadata(read_kola_json(kola_json), str(kola_json))
    return ExtMeta({}, (), "")


def _check(kind: str, key: str, value: Any, where: str) -> None:
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        "bool": isinstance(value, bool),
        "list": isinstance(value, list),
    }[kind]
    if not ok:
        expected = {"str": "a string", "int": "a non-negative integer", "bool": "true or false",
                    "list": "a list"}[kind]
        raise MetadataError(f"{where}: kola metadata key {key!r}: expected {expected}, "
                            f"got {value!r}")


def _kind(key: str) -> str:
    if key in _STRING_KEYS:
        return "str"
    if key in _INT_KEYS:
        return "int"
    if key in _BOOL_KEYS:
        return "bool"
    return "list"


_CONVERT: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "architectures": ("architectures", str.strip),
    "platforms": ("platforms", str.strip),
    "distros": ("distros", str.strip),
    "tags": ("tags", lambda v: v.split()),
    "requiredTag": ("required_tag", lambda v: v.strip()),
    "description": ("description", str),
    "minMemory": ("min_memory", int),
    "minDisk": ("min_disk", int),
    "additionalNics": ("additional_nics", int),
    "appendKernelArgs": ("append_kargs", lambda v: v.split()),
    "appendFirstbootKernelArgs": ("append_firstboot_kargs", lambda v: v.split()),
    "exclusive": ("exclusive", bool),
    "conflicts": ("conflicts", list),
}


def parse_metadata(raw: Mapping[str, Any], where: str) -> ExtMeta:
    """Validate kola metadata strictly and translate it to ``@kola`` keywords.

    Raises :class:`MetadataError` naming ``where`` and the key for an unknown
    key or a value of the wrong type.
    """
    values: dict[str, Any] = {}
    gaps: list[str] = []
    for key, value in raw.items():
        if key not in KEYS:
            raise MetadataError(f"{where}: unknown kola metadata key {key!r}")
        _check(_kind(key), key, value, where)
        if key in _GAPS:
            if value not in (False, "", [], None):
                gaps.append(_GAPS[key])
            continue
        if key in _QEMU_NOOP:
            continue
        if key == "timeoutMin":
            if value:
                values["timeout"] = float(value) * 60
            continue
        if key == "allowConfigWarnings":
            if value:
                values["flags"] = ["allow_config_warnings"]
            continue
        if key == "additionalDisks":
            disks = []
            for spec in value:
                try:
                    parse_disk(spec)
                except ValueError as exc:
                    gaps.append(f"additionalDisks {spec!r}: {exc}")
                else:
                    disks.append(spec)
            values["additional_disks"] = disks
            continue
        if key == "conflicts" and not all(isinstance(c, str) for c in value):
            raise MetadataError(f"{where}: kola metadata key 'conflicts': expected test names")
        field, convert = _CONVERT[key]
        converted = convert(value)
        if converted in ("", []):
            continue
        values[field] = converted
    values.setdefault("timeout", DEFAULT_TIMEOUT_S)
    return ExtMeta(values, tuple(gaps), where, int(raw.get("timeoutMin") or 0))
