"""kola test metadata as a pytest marker.

``@kola(...)`` mirrors the fields of kola's ``register.Test`` in snake_case.
Markers merge like pytest markers do: the closest one wins per key, so a module
``pytestmark = kola(name="basic", exclusive=False)`` and a function-level
``@kola(tags=["slow"])`` combine into one :class:`KolaMeta`.

Naming (see docs/writing-tests.md):

* ``name`` set on a module or class marker makes that module/class ONE kola
  test; each test function in it is a subtest, reported as ``parent/child``
  where ``child`` is the function name without ``test_`` and with ``_`` turned
  into ``-`` (``test_ssh_port`` -> ``basic/ssh-port``), unless ``subtest=``.
* ``name`` set on the function itself makes that function a kola test of its
  own (no subtest unless ``subtest=`` is given).
* No ``name`` anywhere: ``<module>.<function>`` with ``test_`` stripped from
  both and ``_`` -> ``-`` in the function part (``test_podman.py::test_base``
  -> ``podman.base``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from kolapy.errors import BadInputError
from kolapy.machine.spec import DiskSpec

MARKER = "kola"

FLAGS = frozenset(
    {"no_ssh_key", "no_emergency_shell_check", "allow_config_warnings", "fresh_boot"}
)
"""Flags a test may carry (kola: NoSSHKeyInUserData, NoEmergencyShellCheck, AllowConfigWarnings;
kolapy's ``fresh_boot``: the test needs a machine of its own first boot, never a restored clone)."""

ARCHITECTURES = frozenset({"x86_64", "aarch64", "s390x", "ppc64le"})
_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}
FIRMWARES = frozenset({"bios", "uefi", "uefi-secure"})
DEFAULT_TIMEOUT_S = 600.0
DISK_OPTIONS = frozenset({"channel", "serial", "mpath", "4k"})
DISK_CHANNELS = frozenset({"virtio", "nvme", "scsi"})

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+:\-\[\]@]*$")


class MetadataError(BadInputError):
    """Invalid kola metadata; the message names the test and the key."""


@dataclass(frozen=True)
class KolaMeta:
    """Everything kola's ``register.Test`` says about a test, in snake_case.

    A KolaMeta describes one *pytest item*: a whole kola test, or one subtest
    of it (``subtest`` set).  ``full_name`` gives the kola name either way.
    """

    name: str
    description: str = ""
    tags: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    exclude_architectures: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    exclude_platforms: tuple[str, ...] = ()
    distros: tuple[str, ...] = ()
    exclude_distros: tuple[str, ...] = ()
    firmwares: tuple[str, ...] = ()
    exclude_firmwares: tuple[str, ...] = ()
    required_tag: str = ""
    timeout: float = DEFAULT_TIMEOUT_S
    """Seconds (kola's default: 10 minutes)."""
    min_memory: int = 0
    """MiB; 0 = the platform default."""
    min_disk: int = 0
    """GB for the primary disk; 0 = the image's size."""
    additional_disks: tuple[DiskSpec, ...] = ()
    additional_nics: int = 0
    append_kargs: tuple[str, ...] = ()
    append_firstboot_kargs: tuple[str, ...] = ()
    cluster_size: int = 1
    exclusive: bool = True
    conflicts: tuple[str, ...] = ()
    flags: frozenset[str] = frozenset()
    ignition: Any = field(default=None, hash=False)
    """The test's Ignition config as given (dict, Ignition object or path)."""
    member_ignition: Any = field(default=None, hash=False)
    """Clusters only: ``fn(index, addresses)`` -> member ``index``'s own config, merged
    over ``ignition`` (:data:`kolapy.machine.cluster.MemberIgnition`); None: every
    member boots ``ignition``."""
    subtest: str | None = None
    nodeid: str = field(default="", compare=False)
    """The pytest node id this meta was built from (for messages)."""

    @property
    def full_name(self) -> str:
        """``parent/child`` for a subtest, else the kola name."""
        return full_name(self)

    def has_flag(self, flag: str) -> bool:
        """Whether the test carries ``flag`` (one of :data:`FLAGS`)."""
        return flag in self.flags


def full_name(meta: KolaMeta) -> str:
    """The kola name including the subtest: ``basic/ssh-port`` or ``basic``."""
    return f"{meta.name}/{meta.subtest}" if meta.subtest else meta.name


# --------------------------------------------------------------------------- parsing


def parse_disk(spec: str) -> DiskSpec:
    """Parse kola's AdditionalDisks syntax: ``<N>G[:opt,opt=value,...]``.

    Options as in kola: ``channel=virtio|nvme|scsi``, ``serial=X``, ``mpath``, ``4k``.
    Raises ``ValueError`` with the reason.
    """
    if not isinstance(spec, str):
        raise ValueError(f"disk spec must be a string like '5G', got {spec!r}")
    size_text, _, opts_text = spec.partition(":")
    if ":" in opts_text:
        raise ValueError(f"invalid disk spec {spec!r}: more than one ':'")
    if not re.fullmatch(r"[0-9]+G", size_text):
        raise ValueError(f"invalid disk size in {spec!r}: expected an integer followed by G")
    size = int(size_text[:-1])
    if size <= 0:
        raise ValueError(f"invalid disk size in {spec!r}: must be positive")
    serial, channel, options = "", "virtio", []
    if opts_text:
        for opt in opts_text.split(","):
            key, eq, value = opt.partition("=")
            if key not in DISK_OPTIONS:
                raise ValueError(f"unknown disk option {key!r} in {spec!r}")
            if key == "channel":
                if value not in DISK_CHANNELS:
                    raise ValueError(f"unknown disk channel {value!r} in {spec!r}")
                channel = value
            elif key == "serial":
                if not value:
                    raise ValueError(f"empty serial in {spec!r}")
                serial = value
            else:
                if eq:
                    raise ValueError(f"disk option {key!r} takes no value in {spec!r}")
                options.append(key)
    return DiskSpec(size_gib=float(size), serial=serial, channel=channel, options=tuple(options))


def _words(value: Any, key: str) -> list[str]:
    """A whitespace-separated string or a sequence of strings, as a list."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, Iterable) and not isinstance(value, Mapping | bytes):
        items = list(value)
        if all(isinstance(v, str) and v.strip() for v in items):
            return [v.strip() for v in items]
    raise ValueError(f"expected a string or a list of strings, got {value!r}")


def _include_exclude(value: Any, key: str) -> tuple[list[str], list[str]]:
    """Split a list with kola's ``!`` convention into (include, exclude).

    As in kola external tests, a *string* starting with ``!`` excludes every
    word in it (``"!s390x ppc64le"``).  In a list each item may carry its own
    ``!``; mixing included and excluded items is refused (ambiguous).
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("!"):
            return [], text[1:].replace("!", " ").split()
        return text.split(), []
    items = _words(value, key)
    include = [i for i in items if not i.startswith("!")]
    exclude = [i[1:] for i in items if i.startswith("!")]
    if include and exclude:
        raise ValueError("mixes included and '!'-excluded values")
    return include, exclude


def _arch(value: str) -> str:
    arch = _ARCH_ALIASES.get(value, value)
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {value!r} (known: {', '.join(sorted(ARCHITECTURES))})"
        )
    return arch


def _firmware(value: str) -> str:
    if value not in FIRMWARES:
        raise ValueError(f"unknown firmware {value!r} (known: {', '.join(sorted(FIRMWARES))})")
    return value


def _int(value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"must be >= {minimum}, got {value}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _callable(value: Any) -> Any:
    if not callable(value):
        raise ValueError(f"expected a function (index, addresses) -> config, got {value!r}")
    return value


def _name(value: Any) -> str:
    text = _str(value)
    if not _NAME_RE.match(text) or "/" in text:
        raise ValueError(f"invalid kola name {text!r} (letters, digits, . _ - + : only; no '/')")
    return text


def _subtest(value: Any) -> str:
    text = _str(value)
    if not text.strip() or "/" in text or not text.isprintable():
        raise ValueError(f"invalid subtest name {text!r} (non-empty, printable, no '/')")
    return text


def _timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"expected a positive number of seconds, got {value!r}")
    return float(value)


def _kargs(value: Any, key: str) -> tuple[str, ...]:
    return tuple(_words(value, key))


def _flags(value: Any, key: str) -> frozenset[str]:
    items = [value] if isinstance(value, str) else _words(value, key)
    unknown = sorted(set(items) - FLAGS)
    if unknown:
        raise ValueError(f"unknown flag(s) {unknown} (known: {', '.join(sorted(FLAGS))})")
    return frozenset(items)


# key -> normaliser(value, key) returning {field: value}
def _list_field(inc: str, exc: str, item: Any = None) -> Any:
    def norm(value: Any, key: str) -> dict[str, Any]:
        include, exclude = _include_exclude(value, key)
        if item is not None:
            include, exclude = [item(i) for i in include], [item(e) for e in exclude]
        return {inc: tuple(include), exc: tuple(exclude)}

    return norm


def _plain_list(field_name: str, item: Any = None) -> Any:
    def norm(value: Any, key: str) -> dict[str, Any]:
        items = _words(value, key)
        return {field_name: tuple(item(i) for i in items) if item else tuple(items)}

    return norm


def _one(field_name: str, conv: Any) -> Any:
    return lambda value, key: {field_name: conv(value)}


_NORMALISERS: dict[str, Any] = {
    "name": _one("name", _name),
    "description": _one("description", _str),
    "tags": _plain_list("tags"),
    "architectures": _list_field("architectures", "exclude_architectures", _arch),
    "exclude_architectures": _plain_list("exclude_architectures", _arch),
    "platforms": _list_field("platforms", "exclude_platforms"),
    "exclude_platforms": _plain_list("exclude_platforms"),
    "distros": _list_field("distros", "exclude_distros"),
    "exclude_distros": _plain_list("exclude_distros"),
    "firmwares": _list_field("firmwares", "exclude_firmwares", _firmware),
    "exclude_firmwares": _plain_list("exclude_firmwares", _firmware),
    "required_tag": _one("required_tag", _str),
    "timeout": _one("timeout", _timeout),
    "min_memory": _one("min_memory", lambda v: _int(v, 0)),
    "min_disk": _one("min_disk", lambda v: _int(v, 0)),
    "additional_disks": lambda v, k: {
        "additional_disks": tuple(parse_disk(d) for d in ([v] if isinstance(v, str) else v))
    },
    "additional_nics": _one("additional_nics", lambda v: _int(v, 0)),
    "append_kargs": lambda v, k: {"append_kargs": _kargs(v, k)},
    "append_firstboot_kargs": lambda v, k: {"append_firstboot_kargs": _kargs(v, k)},
    "cluster_size": _one("cluster_size", lambda v: _int(v, 1)),
    "exclusive": _one("exclusive", _bool),
    "conflicts": _plain_list("conflicts"),
    "flags": lambda v, k: {"flags": _flags(v, k)},
    "ignition": lambda v, k: {"ignition": v},
    "member_ignition": _one("member_ignition", _callable),
    "subtest": _one("subtest", lambda v: _subtest(v)),
}

KEYS = frozenset(_NORMALISERS)
"""Every key ``@kola(...)`` accepts."""


def normalize(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate marker keywords; return KolaMeta field values.

    Raises :class:`MetadataError` naming ``where`` (the test) and the key.
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        norm = _NORMALISERS.get(key)
        if norm is None:
            raise MetadataError(
                f"{where}: unknown kola metadata key {key!r} (known: {', '.join(sorted(KEYS))})"
            )
        try:
            out.update(norm(value, key))
        except (ValueError, TypeError) as exc:
            raise MetadataError(f"{where}: invalid kola metadata {key}={value!r}: {exc}") from None
    return out


def build_meta(values: Mapping[str, Any], where: str, nodeid: str = "") -> KolaMeta:
    """Build and cross-check a :class:`KolaMeta` from marker-style keywords.

    ``values`` must contain ``name``.  Used by :func:`meta_from_item` and by
    other sources of tests (external tests).
    """
    fields = normalize(values, where)
    if "name" not in fields:
        raise MetadataError(f"{where}: kola metadata needs a name")
    meta = KolaMeta(**fields, nodeid=nodeid)
    if meta.conflicts and meta.exclusive:
        # kola refuses this too: conflicts only mean something between shared-VM tests.
        raise MetadataError(
            f"{where}: invalid kola metadata conflicts: only non-exclusive tests "
            "(exclusive=False) may declare conflicts"
        )
    if meta.cluster_size > 1 and not meta.exclusive:
        # A shared VM has one machine; a cluster is the test's own set of machines.
        raise MetadataError(
            f"{where}: invalid kola metadata cluster_size: a non-exclusive test runs on a "
            "shared machine, so cluster_size must be 1"
        )
    if meta.member_ignition is not None and meta.cluster_size < 2:
        raise MetadataError(
            f"{where}: invalid kola metadata member_ignition: it gives each member of a "
            "cluster its own config, so it needs cluster_size >= 2"
        )
    if meta.required_tag and not meta.required_tag.strip():
        raise MetadataError(f"{where}: invalid kola metadata required_tag: empty")
    return meta


def kola(*args: str, **kwargs: Any) -> pytest.MarkDecorator:
    """The ``@kola(...)`` marker, validated now so mistakes show at import.

    A single positional argument is taken as ``name``.
    """
    if len(args) > 1:
        raise MetadataError(f"kola(): at most one positional argument (the name), got {args!r}")
    if args:
        if "name" in kwargs:
            raise MetadataError("kola(): name given both positionally and as name=")
        kwargs = {"name": args[0], **kwargs}
    normalize(kwargs, "kola(...)")
    mark: pytest.MarkDecorator = pytest.mark.kola(**kwargs)
    return mark


# --------------------------------------------------------------------------- items


def _strip_test(text: str) -> str:
    return text[len("test_") :] if text.startswith("test_") else text


def subtest_name(function_name: str) -> str:
    """``test_ssh_port`` -> ``ssh-port`` (kola-style subtest name)."""
    return _strip_test(function_name).replace("_", "-")


def default_name(module_name: str, function_name: str) -> str:
    """Kola name for a test without ``name=``: ``test_podman``/``test_base`` -> ``podman.base``."""
    module = _strip_test(module_name.rsplit(".", 1)[-1])
    return f"{module}.{subtest_name(function_name)}"


def meta_from_item(item: pytest.Item) -> KolaMeta | None:
    """Build the item's :class:`KolaMeta` from its ``kola`` markers, or None if it has none."""
    where = item.nodeid
    merged: dict[str, Any] = {}
    name_from_item = False
    seen = False
    for node, mark in item.iter_markers_with_node(name=MARKER):
        seen = True
        values = dict(mark.kwargs)
        if mark.args:
            if len(mark.args) > 1 or "name" in values:
                raise MetadataError(f"{where}: kola marker takes at most one positional (the name)")
            values["name"] = mark.args[0]
        for key, value in values.items():
            if key not in merged:  # closest marker wins
                merged[key] = value
                if key == "name":
                    name_from_item = node is item
    if not seen:
        return None
    func_name = getattr(item, "originalname", None) or item.name.split("[", 1)[0]
    param_id = _param_id(item)
    if "name" not in merged:
        module = (
            getattr(getattr(item, "module", None), "__name__", "") or item.nodeid.split("::")[0]
        )
        module = module.rsplit("/", 1)[-1].removesuffix(".py")
        name = default_name(module, func_name)
        merged["name"] = f"{name}[{param_id}]" if param_id else name
    elif not name_from_item and "subtest" not in merged:
        # name inherited from the module/class: this function is one subtest of it
        child = subtest_name(func_name)
        merged["subtest"] = f"{child}[{param_id}]" if param_id else child
    elif param_id and "subtest" not in merged:
        merged["subtest"] = param_id
    return build_meta(merged, where, nodeid=item.nodeid)


def _param_id(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    return callspec.id if callspec is not None else ""
