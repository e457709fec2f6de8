"""The :class:`Ignition` config: a thin typed wrapper over a spec 3.x JSON dict."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kolapy.errors import BadInputError
from kolapy.ignition.butane import butane_to_dict
from kolapy.ignition.dataurl import data_url
from kolapy.ignition.merge import merge_configs
from kolapy.ignition.spec import DEFAULT_VERSION, newer_version

BUTANE_SUFFIXES = (".bu", ".yaml", ".yml")


def _owner(name: str | int | None) -> dict[str, Any] | None:
    if name is None:
        return None
    return {"id": name} if isinstance(name, int) else {"name": name}


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class Ignition:
    """An Ignition spec 3.x config.

    The object holds the JSON dict and nothing else, so any valid config
    round-trips unchanged.  The ``add_*`` builders merge one entry in with
    Ignition's merge rules (calling twice for one path or name combines the
    two) and return ``self`` so calls chain::

        cfg = Ignition().add_file("/etc/motd", "hi\\n").add_unit("x.service", UNIT, enabled=True)
    """

    def __init__(self, version: str = DEFAULT_VERSION, *, source: str | None = None) -> None:
        self._config: dict[str, Any] = {"ignition": {"version": version}}
        self.source = source
        """Where the config came from (a file path), for error messages; None if built."""

    # -- constructors -------------------------------------------------------

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], *, source: str | None = None) -> Ignition:
        """Wrap a config dict (deep-copied).  Raises :class:`BadInputError` if not an object."""
        if not isinstance(config, Mapping):
            where = f"{source}: " if source else ""
            raise BadInputError(
                f"{where}invalid Ignition config: not a JSON object (got {type(config).__name__})"
            )
        obj = cls.__new__(cls)
        obj._config = copy.deepcopy(dict(config))
        obj.source = source
        return obj

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str | None = None) -> Ignition:
        """Parse JSON text.  Raises :class:`BadInputError` (one line) if it is not JSON."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            where = f"{source}: " if source else ""
            raise BadInputError(f"{where}invalid Ignition config: not JSON: {e}") from None
        return cls.from_dict(data, source=source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Ignition:
        """Read ``.ign``/``.json`` (Ignition JSON) or ``.bu``/``.yaml`` (Butane subset)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise BadInputError(f"{p}: cannot read Ignition config: {e}") from None
        if p.suffix in BUTANE_SUFFIXES:
            return butane_to_ignition(text, source=str(p))
        return cls.from_json(text, source=str(p))

    # -- views --------------------------------------------------------------

    @property
    def version(self) -> str | None:
        """The declared ``ignition.version`` (None if missing or not a string)."""
        ign = self._config.get("ignition")
        v = ign.get("version") if isinstance(ign, dict) else None
        return v if isinstance(v, str) else None

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the config dict."""
        return copy.deepcopy(self._config)

    def to_json(self, *, indent: int | None = None) -> str:
        """The config as JSON text (compact unless ``indent`` is given)."""
        seps = (",", ":") if indent is None else (",", ": ")
        return json.dumps(self._config, indent=indent, separators=seps)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON to ``path`` (mode 0600: configs may hold secrets); return it."""
        p = Path(path)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(self.to_json())
        return p

    def merge(self, other: Ignition | Mapping[str, Any]) -> Ignition:
        """A new config: ``other`` merged into this one as Ignition's child config."""
        child = other._config if isinstance(other, Ignition) else dict(other)
        return Ignition.from_dict(merge_configs(self._config, child), source=self.source)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ignition):
            return NotImplemented
        return self._config == other._config

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Ignition({self.to_json()})"

    # -- builders -----------------------------------------------------------

    def _add(self, fragment: dict[str, Any]) -> Ignition:
        fragment.setdefault("ignition", {"version": self.version or DEFAULT_VERSION})
        self._config = merge_configs(self._config, fragment)
        return self

    def add_ssh_key(self, user: str, pubkey: str) -> Ignition:
        """Authorize ``pubkey`` for ``user`` (keys append, without duplicates)."""
        return self.add_user(user, ssh_keys=[pubkey])

    def add_user(
        self,
        name: str,
        *,
        groups: Iterable[str] = (),
        ssh_keys: Iterable[str] = (),
        password_hash: str | None = None,
        uid: int | None = None,
        home_dir: str | None = None,
        shell: str | None = None,
        system: bool | None = None,
    ) -> Ignition:
        """Create or amend a user in ``passwd.users``."""
        user = _drop_none(
            {
                "name": name,
                "groups": list(groups) or None,
                "sshAuthorizedKeys": [k.strip() for k in ssh_keys] or None,
                "passwordHash": password_hash,
                "uid": uid,
                "homeDir": home_dir,
                "shell": shell,
                "system": system,
            }
        )
        return self._add({"passwd": {"users": [user]}})

    def add_group(
        self, name: str, *, gid: int | None = None, system: bool | None = None
    ) -> Ignition:
        """Create or amend a group in ``passwd.groups``."""
        group = _drop_none({"name": name, "gid": gid, "system": system})
        return self._add({"passwd": {"groups": [group]}})

    def add_file(
        self,
        path: str,
        contents: str | bytes,
        *,
        mode: int = 0o644,
        user: str | int | None = None,
        group: str | int | None = None,
        overwrite: bool = True,
    ) -> Ignition:
        """Write a file; ``contents`` travel in the config as a ``data:`` URL."""
        entry = _drop_none(
            {
                "path": path,
                "contents": {"source": data_url(contents)},
                "mode": mode,
                "user": _owner(user),
                "group": _owner(group),
                "overwrite": overwrite,
            }
        )
        return self._add({"storage": {"files": [entry]}})

    def add_directory(
        self,
        path: str,
        *,
        mode: int = 0o755,
        user: str | int | None = None,
        group: str | int | None = None,
        overwrite: bool | None = None,
    ) -> Ignition:
        """Create a directory."""
        entry = _drop_none(
            {
                "path": path,
                "mode": mode,
                "user": _owner(user),
                "group": _owner(group),
                "overwrite": overwrite,
            }
        )
        return self._add({"storage": {"directories": [entry]}})

    def add_link(
        self,
        path: str,
        target: str,
        *,
        hard: bool = False,
        user: str | int | None = None,
        group: str | int | None = None,
        overwrite: bool | None = None,
    ) -> Ignition:
        """Create a symbolic (or, with ``hard=True``, hard) link at ``path``."""
        entry = _drop_none(
            {
                "path": path,
                "target": target,
                "hard": True if hard else None,
                "user": _owner(user),
                "group": _owner(group),
                "overwrite": overwrite,
            }
        )
        return self._add({"storage": {"links": [entry]}})

    def add_unit(
        self,
        name: str,
        contents: str | None = None,
        *,
        enabled: bool | None = None,
        mask: bool | None = None,
        dropins: Mapping[str, str] | None = None,
    ) -> Ignition:
        """Add a systemd unit; ``dropins`` maps drop-in file names to contents."""
        unit = _drop_none(
            {
                "name": name,
                "contents": contents,
                "enabled": enabled,
                "mask": mask,
                "dropins": [{"name": k, "contents": v} for k, v in (dropins or {}).items()] or None,
            }
        )
        return self._add({"systemd": {"units": [unit]}})

    def add_kernel_arguments(
        self, should_exist: Iterable[str] = (), should_not_exist: Iterable[str] = ()
    ) -> Ignition:
        """Add/remove kernel arguments (spec 3.3; an older config is raised to 3.3.0)."""
        kargs = _drop_none(
            {
                "shouldExist": list(should_exist) or None,
                "shouldNotExist": list(should_not_exist) or None,
            }
        )
        version = newer_version(self.version or DEFAULT_VERSION, "3.3.0")
        return self._add({"ignition": {"version": version}, "kernelArguments": kargs})


def butane_to_ignition(yaml_text: str, *, source: str | None = None) -> Ignition:
    """Translate a Butane document (variant fcos or nestos) to an :class:`Ignition`.

    ``source`` (a file name) prefixes error messages; see :mod:`kolapy.ignition.butane`.
    """
    return Ignition.from_dict(butane_to_dict(yaml_text, source=source), source=source)
