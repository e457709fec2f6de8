"""kolapy.ignition.verify: a guest that carries its config passes; each difference fails."""

from __future__ import annotations

import dataclasses
import gzip
from typing import Any

import pytest

from kolapy.ignition import Ignition
from kolapy.ignition.verify import (
    Account,
    GuestProbe,
    Node,
    decode_source,
    expected_content,
    mismatches,
)
from kolapy.result import CommandResult
from kolapy.suites import _ignition_configs as cfgs

NAMES = {"nobody": 65534, "adm": 4, "root": 0}


class FakeGuest:
    """A :class:`~kolapy.ignition.verify.Probe` that applied ``config`` faithfully."""

    def __init__(self, config: Ignition) -> None:
        self.nodes: dict[str, Node] = {}
        self.contents: dict[str, bytes] = {}
        self.users: dict[str, Account] = {}
        self.groups: dict[str, Account] = {"adm": Account("adm", 4, 4)}
        self.units: dict[str, str] = {}
        self._apply(config.to_dict())

    def _owner(self, entry: dict[str, Any], kind: str) -> int:
        owner = entry.get(kind) or {}
        if owner.get("id") is not None:
            return int(owner["id"])
        name = owner.get("name")
        if name in self.groups and kind == "group":
            return self.groups[name].id
        return NAMES.get(name, 0) if name else 0

    def _apply(self, d: dict[str, Any]) -> None:
        passwd = d.get("passwd", {})
        for g in passwd.get("groups", []):
            self.groups[g["name"]] = Account(g["name"], g["gid"], g["gid"])
        for u in passwd.get("users", []):
            gid = self.groups[u["primaryGroup"]].id if u.get("primaryGroup") else 1000
            self.users[u["name"]] = Account(u["name"], u.get("uid", 1000), gid,
                                            u.get("homeDir", f"/home/{u['name']}"),
                                            u.get("shell", "/bin/bash"), tuple(u.get("groups", ())))
            if u.get("sshAuthorizedKeys"):
                path = f"{self.users[u['name']].home}/.ssh/authorized_keys.d/ignition"
                self.nodes[path] = Node("file", 0o600, 0, 0, 600)
                self.contents[path] = "\n".join(u["sshAuthorizedKeys"]).encode() + b"\n"
        storage = d.get("storage", {})
        for i, e in enumerate(storage.get("directories", [])):
            self.nodes[e["path"]] = Node("directory", e.get("mode", 0o755),
                                         self._owner(e, "user"), self._owner(e, "group"), 100 + i)
        for i, e in enumerate(storage.get("files", [])):
            self.nodes[e["path"]] = Node("file", e.get("mode", 0o644), self._owner(e, "user"),
                                         self._owner(e, "group"), 200 + i)
            self.contents[e["path"]] = expected_content(e)
        for e in storage.get("links", []):
            if e.get("hard"):
                self.nodes[e["path"]] = self.nodes[e["target"]]
            else:
                self.nodes[e["path"]] = Node("link", 0o777, 0, 0, 300, e["target"])
        for u in d.get("systemd", {}).get("units", []):
            state = "masked" if u.get("mask") else {True: "enabled", False: "disabled"}.get(
                u.get("enabled"), "static")
            self.units[u["name"]] = state
            if u.get("contents") is not None and not u.get("mask"):
                path = f"/etc/systemd/system/{u['name']}"
                self.nodes[path] = Node("file", 0o644, 0, 0, 400)
                self.contents[path] = u["contents"].encode()
            for dropin in u.get("dropins", []):
                path = f"/etc/systemd/system/{u['name']}.d/{dropin['name']}"
                self.nodes[path] = Node("file", 0o644, 0, 0, 500)
                self.contents[path] = dropin["contents"].encode()

    # Probe
    def node(self, path: str) -> Node | None:
        return self.nodes.get(path)

    def content(self, path: str) -> bytes:
        return self.contents[path]

    def user(self, name: str) -> Account | None:
        return self.users.get(name) or (
            Account(name, NAMES[name], NAMES[name]) if name in NAMES else None)

    def group(self, name: str) -> Account | None:
        return self.groups.get(name)

    def unit_state(self, name: str) -> str:
        return self.units.get(name, "")


def test_faithful_guest_has_no_mismatch() -> None:
    config = cfgs.shared_config()
    assert mismatches(FakeGuest(config), config) == []


def _mutations() -> list[tuple[str, Any]]:
    def mode(g: FakeGuest) -> None:
        p = "/etc/kolapy-ign/inline.txt"
        g.nodes[p] = dataclasses.replace(g.nodes[p], mode=0o644)

    def owner(g: FakeGuest) -> None:
        p = "/var/lib/kolapy-ign/private"
        g.nodes[p] = dataclasses.replace(g.nodes[p], gid=0)

    def content(g: FakeGuest) -> None:
        g.contents["/etc/kolapy-ign/binary.bin"] = b"other"

    def gz(g: FakeGuest) -> None:
        g.contents["/var/lib/kolapy-ign/compressed.txt"] = gzip.compress(b"x")

    def append(g: FakeGuest) -> None:
        g.contents["/etc/kolapy-ign/appended.txt"] = b"first\nsecond\n"

    def overwrite(g: FakeGuest) -> None:
        g.contents["/etc/motd"] = b"the image's motd\n"

    def symlink(g: FakeGuest) -> None:
        g.nodes["/etc/kolapy-ign/symlink"] = Node("link", 0o777, 0, 0, 1, "/etc/elsewhere")

    def hardlink(g: FakeGuest) -> None:
        p = "/etc/kolapy-ign/hardlink"
        g.nodes[p] = dataclasses.replace(g.nodes[p], inode=999)

    def missing_dir(g: FakeGuest) -> None:
        del g.nodes["/var/lib/kolapy-ign/private"]

    def file_is_dir(g: FakeGuest) -> None:
        p = "/etc/kolapy-ign/owned-by-id"
        g.nodes[p] = dataclasses.replace(g.nodes[p], kind="directory")

    def uid(g: FakeGuest) -> None:
        g.users[cfgs.USER] = dataclasses.replace(g.users[cfgs.USER], id=1001)

    def home(g: FakeGuest) -> None:
        g.users[cfgs.USER] = dataclasses.replace(g.users[cfgs.USER], home="/home/kolapy-ign")

    def shell(g: FakeGuest) -> None:
        g.users[cfgs.USER] = dataclasses.replace(g.users[cfgs.USER], shell="/bin/bash")

    def groups(g: FakeGuest) -> None:
        g.users[cfgs.USER] = dataclasses.replace(g.users[cfgs.USER], groups=(cfgs.GROUP,))

    def primary(g: FakeGuest) -> None:
        g.users[cfgs.USER] = dataclasses.replace(g.users[cfgs.USER], gid=100)

    def gid(g: FakeGuest) -> None:
        g.groups[cfgs.GROUP] = dataclasses.replace(g.groups[cfgs.GROUP], id=5000)

    def no_user(g: FakeGuest) -> None:
        del g.users[cfgs.USER]

    def key(g: FakeGuest) -> None:
        g.contents[f"{cfgs.USER_HOME}/.ssh/authorized_keys.d/ignition"] = b"ssh-ed25519 AAAAother\n"

    def enabled(g: FakeGuest) -> None:
        g.units["kolapy-ign-enabled.service"] = "disabled"

    def disabled(g: FakeGuest) -> None:
        g.units["kolapy-ign-disabled.service"] = "enabled"

    def masked(g: FakeGuest) -> None:
        g.units[cfgs.MASKED_UNIT] = "enabled"

    def instance(g: FakeGuest) -> None:
        g.units[cfgs.INSTANCE] = "disabled"

    def dropin(g: FakeGuest) -> None:
        del g.nodes["/etc/systemd/system/kolapy-ign-enabled.service.d/10-kolapy.conf"]

    def unit_text(g: FakeGuest) -> None:
        g.contents["/etc/systemd/system/kolapy-ign-disabled.service"] = b"[Unit]\n"

    def hostname(g: FakeGuest) -> None:
        g.contents["/etc/hostname"] = b"localhost\n"

    return [(f.__name__, f) for f in (
        mode, owner, content, gz, append, overwrite, symlink, hardlink, missing_dir, file_is_dir,
        uid, home, shell, groups, primary, gid, no_user, key, enabled, disabled, masked, instance,
        dropin, unit_text, hostname)]


@pytest.mark.parametrize(("what", "mutate"), _mutations(), ids=[n for n, _ in _mutations()])
def test_each_difference_is_reported(what: str, mutate: Any) -> None:
    config = cfgs.shared_config()
    guest = FakeGuest(config)
    mutate(guest)
    assert mismatches(guest, config), f"a guest with a wrong {what} passed"


def test_decode_source() -> None:
    assert decode_source("data:,a%20b") == b"a b"
    assert decode_source("data:;base64,AAE=") == b"\x00\x01"
    assert decode_source(None) == b""
    with pytest.raises(ValueError, match="only data: URLs"):
        decode_source("http://example/x")


class ScriptedMachine:
    """Answers commands from a table (``run``/``succeed`` of a Machine)."""

    def __init__(self, answers: dict[str, tuple[int, str]]) -> None:
        self.answers = answers

    def run(self, cmd: Any, timeout: float | None = None) -> CommandResult:
        from kolapy.machine.base import to_shell

        text = to_shell(cmd)
        rc, out = self.answers.get(text, (1, ""))
        return CommandResult(text, rc, out, "", 0.0)

    def succeed(self, cmd: Any, timeout: float | None = None) -> str:
        r = self.run(cmd)
        assert r.rc == 0, r.command
        return r.stdout


def test_guest_probe_parses_stat_and_getent() -> None:
    m = ScriptedMachine({
        "sudo -n stat -c '%F|%a|%u|%g|%i' /x": (0, "symbolic link|777|0|0|12\n"),
        "sudo -n readlink /x": (0, "/y\n"),
        "getent passwd u": (0, "u:x:10:20:gecos:/var/home/u:/bin/sh\n"),
        "id -nG u": (0, "g adm\n"),
        "getent group g": (0, "g:x:20:\n"),
        "systemctl is-enabled a.service": (1, "masked\n"),
    })
    probe = GuestProbe(m)
    assert probe.node("/x") == Node("link", 0o777, 0, 0, 12, "/y")
    assert probe.node("/missing") is None
    assert probe.user("u") == Account("u", 10, 20, "/var/home/u", "/bin/sh", ("g", "adm"))
    assert probe.group("g") == Account("g", 20, 20)
    assert probe.unit_state("a.service") == "masked"
