"""Check that a running machine carries what an Ignition config asked for.

The expectations come from the config itself (file contents decoded from their
``data:`` URLs, modes, owners, link targets, users, groups, unit states), so a test
states a config once and :func:`mismatches` says where the machine differs::

    problems = mismatches(GuestProbe(machine), config)
    assert not problems, "\\n".join(problems)

The machine is read through a :class:`Probe`; :class:`GuestProbe` asks a
:class:`~kolapy.machine.base.Machine` over SSH (with ``sudo``), and unit tests
give a fake one.
"""

from __future__ import annotations

import base64
import gzip
import shlex
import urllib.parse
from dataclasses import dataclass
from typing import Any, Protocol

from kolapy.ignition.config import Ignition

DEFAULT_FILE_MODE = 0o644
DEFAULT_DIR_MODE = 0o755


@dataclass(frozen=True)
class Node:
    """A filesystem node on the machine."""

    kind: str
    """``file``, ``directory`` or ``link`` (a symbolic link, not followed)."""
    mode: int
    uid: int
    gid: int
    inode: int = 0
    target: str = ""
    """A symbolic link's target."""


@dataclass(frozen=True)
class Account:
    """A user (``passwd``) or group (``group``) entry."""

    name: str
    id: int
    gid: int = 0
    home: str = ""
    shell: str = ""
    groups: tuple[str, ...] = ()
    """Supplementary group names (users only)."""


class Probe(Protocol):
    """How :func:`mismatches` reads a machine."""

    def node(self, path: str) -> Node | None: ...
    def content(self, path: str) -> bytes: ...
    def user(self, name: str) -> Account | None: ...
    def group(self, name: str) -> Account | None: ...
    def unit_state(self, name: str) -> str:
        """``systemctl is-enabled`` of the unit (``enabled``, ``disabled``, ``masked``...)."""
        ...


class GuestProbe:
    """A :class:`Probe` over a machine's SSH session (reads as root with ``sudo -n``)."""

    def __init__(self, machine: Any) -> None:
        self.machine = machine

    def _run(self, *argv: str) -> Any:
        return self.machine.run(["sudo", "-n", *argv])

    def node(self, path: str) -> Node | None:
        r = self._run("stat", "-c", "%F|%a|%u|%g|%i", path)
        if r.failed:
            return None
        kind_text, mode, uid, gid, inode = r.stdout.strip().split("|")
        kind = {"regular file": "file", "regular empty file": "file", "directory": "directory",
                "symbolic link": "link"}.get(kind_text, kind_text)
        target = self._run("readlink", path).stdout.strip() if kind == "link" else ""
        return Node(kind, int(mode, 8), int(uid), int(gid), int(inode), target)

    def content(self, path: str) -> bytes:
        out = self.machine.succeed(["sudo", "-n", "base64", "-w0", path])
        return base64.b64decode(out.strip())

    def user(self, name: str) -> Account | None:
        r = self.machine.run(["getent", "passwd", name])
        if r.failed:
            return None
        fields = r.stdout.strip().split(":")
        groups = self.machine.succeed(["id", "-nG", name]).split()
        return Account(fields[0], int(fields[2]), int(fields[3]), fields[5], fields[6],
                       tuple(groups))

    def group(self, name: str) -> Account | None:
        r = self.machine.run(["getent", "group", name])
        if r.failed:
            return None
        fields = r.stdout.strip().split(":")
        return Account(fields[0], int(fields[2]), int(fields[2]))

    def unit_state(self, name: str) -> str:
        return str(self.machine.run(f"systemctl is-enabled {shlex.quote(name)}").stdout.strip())


def decode_source(source: str | None, compression: str | None = None) -> bytes:
    """The bytes a ``data:`` URL carries (``None`` or ``""``: empty), gunzipped if asked.

    Raises ``ValueError`` for other URL schemes: their contents are not in the config.
    """
    if not source:
        return b""
    if not source.startswith("data:"):
        raise ValueError(f"only data: URLs can be checked, not {source[:40]!r}")
    meta, _, payload = source[5:].partition(",")
    data = (base64.b64decode(payload) if meta.endswith(";base64")
            else urllib.parse.unquote_to_bytes(payload))
    if compression == "gzip":
        data = gzip.decompress(data)
    elif compression:
        raise ValueError(f"unknown compression {compression!r}")
    return data


def expected_content(entry: dict[str, Any]) -> bytes:
    """A ``storage.files`` entry's final contents: its contents, then each ``append``."""
    contents = entry.get("contents") or {}
    data = decode_source(contents.get("source"), contents.get("compression"))
    for extra in entry.get("append") or ():
        data += decode_source(extra.get("source"), extra.get("compression"))
    return data


class _Checker:
    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.problems: list[str] = []
        self._ids: dict[tuple[str, str], int | None] = {}

    def owner_id(self, kind: str, owner: dict[str, Any] | None) -> int | None:
        """The numeric id an owner entry means (default root)."""
        if not owner:
            return 0
        if owner.get("id") is not None:
            return int(owner["id"])
        name = str(owner.get("name"))
        if (kind, name) not in self._ids:
            account = self.probe.user(name) if kind == "user" else self.probe.group(name)
            self._ids[(kind, name)] = account.id if account else None
        return self._ids[(kind, name)]

    def node(self, entry: dict[str, Any], kind: str, default_mode: int | None) -> Node | None:
        path = entry["path"]
        node = self.probe.node(path)
        if node is None:
            self.problems.append(f"{path}: missing (expected a {kind})")
            return None
        if node.kind != kind:
            self.problems.append(f"{path}: is a {node.kind}, expected a {kind}")
            return node
        mode = entry.get("mode", default_mode)
        if mode is not None and kind != "link" and node.mode != mode:
            self.problems.append(f"{path}: mode {node.mode:04o}, expected {mode:04o}")
        for what, have in (("user", node.uid), ("group", node.gid)):
            want = self.owner_id(what, entry.get(what))
            if want is None:
                self.problems.append(f"{path}: {what} {entry.get(what)} does not exist")
            elif have != want:
                self.problems.append(f"{path}: {what} id {have}, expected {want}")
        return node

    def files(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            if self.node(entry, "file", DEFAULT_FILE_MODE) is None:
                continue
            try:
                want = expected_content(entry)
            except ValueError:
                continue  # remote contents: the test checks them itself
            have = self.probe.content(entry["path"])
            if have != want:
                self.problems.append(
                    f"{entry['path']}: contents {_short(have)}, expected {_short(want)}"
                )

    def directories(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            self.node(entry, "directory", DEFAULT_DIR_MODE)

    def links(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            path, target = entry["path"], entry["target"]
            if entry.get("hard"):
                node, dest = self.probe.node(path), self.probe.node(target)
                if node is None or dest is None:
                    self.problems.append(f"{path}: hard link or its target {target} missing")
                elif node.inode != dest.inode:
                    self.problems.append(f"{path}: not a hard link to {target} (other inode)")
                continue
            node = self.node(entry, "link", None)
            if node is not None and node.kind == "link" and node.target != target:
                self.problems.append(f"{path}: links to {node.target!r}, expected {target!r}")

    def groups(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            group = self.probe.group(entry["name"])
            if group is None:
                self.problems.append(f"group {entry['name']}: missing")
            elif entry.get("gid") is not None and group.id != entry["gid"]:
                self.problems.append(f"group {entry['name']}: gid {group.id}, "
                                     f"expected {entry['gid']}")

    def users(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            name = entry["name"]
            user = self.probe.user(name)
            if user is None:
                self.problems.append(f"user {name}: missing")
                continue
            wanted = {"uid": (user.id, entry.get("uid")),
                      "home": (user.home, entry.get("homeDir")),
                      "shell": (user.shell, entry.get("shell"))}
            for what, (have, want) in wanted.items():
                if want is not None and have != want:
                    self.problems.append(f"user {name}: {what} {have!r}, expected {want!r}")
            primary = entry.get("primaryGroup")
            if primary is not None:
                group = self.probe.group(primary)
                if group is None or group.id != user.gid:
                    self.problems.append(f"user {name}: primary gid {user.gid}, "
                                         f"expected group {primary}")
            missing = sorted(set(entry.get("groups") or ()) - set(user.groups))
            if missing:
                self.problems.append(f"user {name}: not in groups {missing}")
            keys = entry.get("sshAuthorizedKeys") or ()
            if keys:
                path = f"{user.home}/.ssh/authorized_keys.d/ignition"
                if self.probe.node(path) is None:
                    self.problems.append(f"user {name}: {path} missing")
                    continue
                have_keys = self.probe.content(path).decode(errors="replace")
                lost = [k for k in keys if k.strip() not in have_keys]
                if lost:
                    self.problems.append(f"user {name}: {len(lost)} SSH key(s) not authorized")

    def units(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            name = entry["name"]
            state = self.probe.unit_state(name)
            if "@." in name:
                want = None  # a template: only its instances have a state
            elif entry.get("mask"):
                want = "masked"
            elif entry.get("enabled") is True:
                want = "enabled"
            elif entry.get("enabled") is False:
                want = "disabled"
            else:
                want = None
            if want is not None and state != want:
                self.problems.append(f"unit {name}: {state or 'unknown'}, expected {want}")
            if entry.get("contents") is not None and not entry.get("mask"):
                path = f"/etc/systemd/system/{name}"
                have = self.probe.content(path) if self.probe.node(path) else None
                if have != entry["contents"].encode():
                    self.problems.append(f"unit {name}: {path} does not hold the config's text")
            for dropin in entry.get("dropins") or ():
                path = f"/etc/systemd/system/{name}.d/{dropin['name']}"
                if self.probe.node(path) is None:
                    self.problems.append(f"unit {name}: drop-in {path} missing")
                elif self.probe.content(path) != str(dropin.get("contents", "")).encode():
                    self.problems.append(f"unit {name}: drop-in {path} differs from the config")


def mismatches(probe: Probe, config: Ignition | dict[str, Any],
               sections: tuple[str, ...] = ("storage", "passwd", "systemd")) -> list[str]:
    """Where the machine differs from ``config`` (empty: it carries all of it).

    ``sections`` limits the check (``storage``: files, directories, links;
    ``passwd``: users, groups; ``systemd``: units and drop-ins).
    """
    cfg = config.to_dict() if isinstance(config, Ignition) else config
    check = _Checker(probe)
    if "passwd" in sections:
        check.groups(cfg.get("passwd", {}).get("groups") or [])
        check.users(cfg.get("passwd", {}).get("users") or [])
    if "storage" in sections:
        storage = cfg.get("storage", {})
        check.directories(storage.get("directories") or [])
        check.files(storage.get("files") or [])
        check.links(storage.get("links") or [])
    if "systemd" in sections:
        check.units(cfg.get("systemd", {}).get("units") or [])
    return check.problems


def _short(data: bytes, limit: int = 60) -> str:
    text = repr(data[:limit])
    return text + ("..." if len(data) > limit else "")
