"""Ignition's config merge rules, applied to plain JSON dicts.

The rules are Ignition's own (coreos/ignition config/merge and
docs/operator-notes.md "Config Merging"), restated for JSON:

* objects merge key by key; a child value overrides the parent's, except that
  a child ``null`` (Go: a nil pointer) keeps the parent's value;
* lists of objects merge by a key field (files by ``path``, units by ``name``,
  ...): an entry whose key is in both is merged recursively, parent-only
  entries keep their place, child-only entries are appended;
* ``storage.files``/``directories``/``links`` share one key space: a child
  link at a path removes the parent's file at that path (and so on);
* likewise ``kernelArguments.shouldExist``/``shouldNotExist``;
* lists of plain values (``sshAuthorizedKeys``, ``groups``, ...) are keyed by
  the value itself, i.e. appended without duplicates;
* a few argument lists (``files[].append``, filesystem ``options`` and
  ``mountOptions``, luks and raid ``options``) are simply concatenated;
* an ``httpHeaders`` entry in the child with no ``value`` removes the
  parent's header of that name.

One deliberate difference: Ignition only merges configs of one spec version;
here the result declares the newer of the two versions, since every 3.x spec
is a superset of the older ones.  This lets a 3.0 test config take the
harness's fragment.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from kolapy.ignition.spec import newer_version

Path = tuple[str, ...]
KeyFn = Callable[[Any], str]

_APPEND = "append"  # marker: concatenate, no de-duplication


def _field(name: str) -> KeyFn:
    def key(item: Any) -> str:
        if isinstance(item, dict):
            value = item.get(name)
            return "" if value is None else str(value)
        return _value_key(item)

    return key


def _value_key(item: Any) -> str:
    # Canonical JSON, so 1 and "1" (or two equal objects) are told apart reliably.
    return json.dumps(item, sort_keys=True)


def _partition_key(item: Any) -> str:
    if not isinstance(item, dict):
        return _value_key(item)
    if item.get("number"):
        return f"number:{item['number']}"
    if item.get("label") is not None:
        return f"label:{item['label']}"
    return ""


# (path of the list, with "*" for "any list item") -> (key function, handle).
# Lists that share a handle inside one object share one key space.
_LIST_RULES: dict[Path, tuple[KeyFn | str, str | None]] = {
    ("ignition", "config", "merge"): (_field("source"), None),
    ("ignition", "proxy", "noProxy"): (_value_key, None),
    ("ignition", "security", "tls", "certificateAuthorities"): (_field("source"), None),
    ("kernelArguments", "shouldExist"): (_value_key, "kernelArgument"),
    ("kernelArguments", "shouldNotExist"): (_value_key, "kernelArgument"),
    ("passwd", "users"): (_field("name"), None),
    ("passwd", "users", "*", "groups"): (_value_key, None),
    ("passwd", "users", "*", "sshAuthorizedKeys"): (_value_key, None),
    ("passwd", "groups"): (_field("name"), None),
    ("storage", "files"): (_field("path"), "node"),
    ("storage", "directories"): (_field("path"), "node"),
    ("storage", "links"): (_field("path"), "node"),
    ("storage", "files", "*", "append"): (_APPEND, None),
    ("storage", "disks"): (_field("device"), None),
    ("storage", "disks", "*", "partitions"): (_partition_key, None),
    ("storage", "filesystems"): (_field("device"), None),
    ("storage", "filesystems", "*", "options"): (_APPEND, None),
    ("storage", "filesystems", "*", "mountOptions"): (_APPEND, None),
    ("storage", "luks"): (_field("name"), None),
    ("storage", "luks", "*", "options"): (_APPEND, None),
    ("storage", "luks", "*", "openOptions"): (_value_key, None),
    ("storage", "luks", "*", "clevis", "tang"): (_field("url"), None),
    ("storage", "raid"): (_field("name"), None),
    ("storage", "raid", "*", "devices"): (_value_key, None),
    ("storage", "raid", "*", "options"): (_APPEND, None),
    ("systemd", "units"): (_field("name"), None),
    ("systemd", "units", "*", "dropins"): (_field("name"), None),
}


def _rule(path: Path) -> tuple[KeyFn | str, str | None]:
    if path[-1] == "httpHeaders":  # inside any resource, wherever it sits
        return _field("name"), None
    # Lists kolapy does not know (a future spec) fall back to "append without
    # duplicates", which is what Ignition does for every list of plain values.
    return _LIST_RULES.get(path, (_value_key, None))


def merge_configs(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Merge ``child`` into ``parent`` with Ignition's rules; return a new dict.

    Neither input is modified.
    """
    result = _merge_object(parent, child, ())
    p_version = (parent.get("ignition") or {}).get("version")
    c_version = (child.get("ignition") or {}).get("version")
    if isinstance(p_version, str) and isinstance(c_version, str):
        result["ignition"]["version"] = newer_version(p_version, c_version)
    return result


def _merge_object(parent: dict[str, Any], child: dict[str, Any], path: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    handles: dict[str, list[str]] = {}
    for name in [*parent, *(k for k in child if k not in parent)]:
        p, c = parent.get(name), child.get(name)
        _, handle = _rule((*path, name))
        if handle is not None and isinstance(p, list | None) and isinstance(c, list | None):
            handles.setdefault(handle, []).append(name)
            continue
        result[name] = _merge_value(p, c, (*path, name), name in child)
    for fields in handles.values():
        result.update(_merge_shared_lists(parent, child, fields, path))
    # Keep the parent's key order (handle lists were set last above).
    order = [*parent, *(k for k in child if k not in parent)]
    return {k: result[k] for k in order if k in result}


def _merge_value(p: Any, c: Any, path: Path, child_has: bool) -> Any:
    if not child_has or c is None:
        return copy.deepcopy(p)
    if isinstance(p, dict) and isinstance(c, dict):
        return _merge_object(p, c, path)
    if isinstance(p, list) and isinstance(c, list):
        return _merge_list(p, c, path)
    return copy.deepcopy(c)


def _merge_list(parent: list[Any], child: list[Any], path: Path) -> list[Any]:
    key_fn, _ = _rule(path)
    if key_fn == _APPEND:
        return copy.deepcopy(parent + child)
    assert callable(key_fn)
    child_by_key = {key_fn(item): item for item in child}
    parent_keys = {key_fn(item) for item in parent}
    result: list[Any] = []
    for item in parent:
        k = key_fn(item)
        if k not in child_by_key:
            result.append(copy.deepcopy(item))
        elif (merged := _merge_item(item, child_by_key[k], path)) is not None:
            result.append(merged)
    result.extend(copy.deepcopy(item) for item in child if key_fn(item) not in parent_keys)
    return result


def _merge_item(p: Any, c: Any, path: Path) -> Any:
    if isinstance(p, dict) and isinstance(c, dict):
        if path[-1] == "httpHeaders" and c.get("value") is None:
            return None  # Ignition: a child header without a value removes the parent's
        return _merge_object(p, c, (*path, "*"))
    return copy.deepcopy(c)


def _merge_shared_lists(
    parent: dict[str, Any], child: dict[str, Any], fields: list[str], path: Path
) -> dict[str, list[Any]]:
    """Merge lists that share one key space (files/directories/links)."""
    child_home: dict[str, tuple[str, Any]] = {}
    for name in fields:
        key_fn = _rule((*path, name))[0]
        assert callable(key_fn)
        for item in child.get(name) or []:
            child_home[key_fn(item)] = (name, item)
    out: dict[str, list[Any]] = {}
    for name in fields:
        key_fn = _rule((*path, name))[0]
        assert callable(key_fn)
        p_list = parent.get(name) or []
        result: list[Any] = []
        for item in p_list:
            home = child_home.get(key_fn(item))
            if home is None:
                result.append(copy.deepcopy(item))
            elif home[0] == name:
                result.append(_merge_item(item, home[1], (*path, name)))
            # else: the child redefines this path in another list; drop ours
        p_keys = {key_fn(item) for item in p_list}
        result.extend(
            copy.deepcopy(item) for item in child.get(name) or [] if key_fn(item) not in p_keys
        )
        if result or name in parent or name in child:
            out[name] = result
    return out
