"""kolapy.updates without a VM: status parsing of both backends, the commands each runs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from kolapy.updates import (
    OstreeAdminUpdater,
    RpmOstreeUpdater,
    UpdateError,
    make_commit,
    parse_ostree_admin_status,
    parse_rpm_ostree_status,
    updater_for,
)

A = "dcd2acc933374054270a9eed0b8b71425334abb3980def3142e6a594bf81c199"
B = "53479104fe37b747b90fc5004f64e9e55827e3344bc86c74d7ece46d8cdd66df"

# Captured from the reference image (ostree 2022.7) after a deploy of B.
PENDING = f"""\
  debian {B}.0 (pending)
    Version: v2
    origin refspec: kolapy/test
* debian {A}.0
    Version: bookworm-kolapy
    origin refspec: kolapy/x86_64/ref
"""

# After the reboot into B.
BOOTED_B = f"""\
* debian {B}.0
    Version: v2
    origin refspec: kolapy/test
  debian {A}.0 (rollback)
    Version: bookworm-kolapy
    origin refspec: kolapy/x86_64/ref
"""

# After ``ostree admin unlock --hotfix`` (captured).
HOTFIX = f"""\
* debian {A}.1
    Version: bookworm-kolapy
    Unlocked: hotfix
    origin refspec: kolapy/x86_64/ref
  debian {A}.2 (rollback)
    Version: bookworm-kolapy
    origin refspec: kolapy/x86_64/ref
"""

RPM_OSTREE = {
    "deployments": [
        {
            "id": f"nestos-{B}.0", "osname": "nestos", "serial": 0, "checksum": B,
            "version": "22.03.20240101", "origin": "nestos:nestos/x86_64/stable",
            "booted": False, "staged": True, "pinned": False, "unlocked": "none",
        },
        {
            "id": f"nestos-{A}.0", "osname": "nestos", "serial": 0, "checksum": A,
            "version": "22.03.20231201", "origin": "nestos:nestos/x86_64/stable",
            "booted": True, "staged": False, "pinned": True, "unlocked": "none",
        },
    ],
    "transaction": None,
}


def test_ostree_admin_pending_update() -> None:
    status = parse_ostree_admin_status(PENDING)
    assert [d.checksum for d in status.deployments] == [B, A]
    assert status.booted.checksum == A and status.booted.version == "bookworm-kolapy"
    assert status.staged is not None and status.staged.checksum == B
    assert status.staged.version == "v2" and status.staged.origin == "kolapy/test"
    assert status.rollback is status.booted  # a rollback now discards the pending update


def test_ostree_admin_after_reboot() -> None:
    status = parse_ostree_admin_status(BOOTED_B)
    assert status.booted.checksum == B and status.staged is None
    assert status.rollback is not None and status.rollback.checksum == A
    assert status.rollback.origin == "kolapy/x86_64/ref"


def test_ostree_admin_hotfix_and_serials() -> None:
    status = parse_ostree_admin_status(HOTFIX)
    assert status.booted.unlocked == "hotfix" and status.booted.serial == 1
    assert status.rollback is not None and status.rollback.unlocked == "none"
    assert status.rollback.serial == 2 and status.rollback.id == f"debian-{A}.2"


def test_ostree_admin_pinned_and_staged_flags() -> None:
    text = f"  debian {B}.0 (staged)\n    Version: 2\n* debian {A}.0\n    Pinned: yes\n"
    status = parse_ostree_admin_status(text)
    assert status.deployments[0].staged and not status.deployments[1].staged
    assert status.booted.pinned and not status.deployments[0].pinned
    assert status.booted.version is None


@pytest.mark.parametrize("bad", ["", "error: not an ostree system\n", f"? debian {A}.0\n"])
def test_ostree_admin_garbage(bad: str) -> None:
    with pytest.raises(UpdateError):
        parse_ostree_admin_status(bad)


def test_two_booted_is_an_error() -> None:
    status = parse_ostree_admin_status(f"* debian {A}.0\n* debian {B}.0\n")
    with pytest.raises(UpdateError, match="one booted"):
        _ = status.booted


def test_rpm_ostree_json() -> None:
    status = parse_rpm_ostree_status(json.dumps(RPM_OSTREE))
    assert status.booted.checksum == A and status.booted.pinned
    assert status.staged is not None and status.staged.checksum == B and status.staged.staged
    assert status.staged.version == "22.03.20240101"
    assert status.booted.origin == "nestos:nestos/x86_64/stable"


def test_rpm_ostree_not_json() -> None:
    with pytest.raises(UpdateError, match="rpm-ostree status"):
        parse_rpm_ostree_status("error: Unknown option")


@dataclass
class Result:
    stdout: str = ""
    stderr: str = ""
    rc: int = 0

    @property
    def succeeded(self) -> bool:
        return self.rc == 0

    @property
    def failed(self) -> bool:
        return self.rc != 0


@dataclass
class FakeMachine:
    """Answers commands from a table (first matching substring wins); records them."""

    answers: dict[str, Result]
    commands: list[str] = field(default_factory=list)

    def run(self, cmd: object, timeout: float | None = None) -> Result:
        text = cmd if isinstance(cmd, str) else " ".join(map(str, cmd))  # type: ignore[arg-type]
        self.commands.append(text)
        return next((r for k, r in self.answers.items() if k in text), Result())

    def succeed(self, cmd: object, timeout: float | None = None) -> str:
        r = self.run(cmd, timeout)
        assert r.succeeded, f"{cmd} failed"
        return r.stdout


def test_updater_for_picks_backend() -> None:
    with_rpm = FakeMachine({"command -v rpm-ostree": Result("/usr/bin/rpm-ostree")})
    without = FakeMachine({"command -v rpm-ostree": Result(rc=1)})
    assert isinstance(updater_for(with_rpm), RpmOstreeUpdater)
    assert isinstance(updater_for(without), OstreeAdminUpdater)


def test_ostree_admin_rollback_redeploys_previous_commit_with_its_origin() -> None:
    m = FakeMachine({"ostree admin status": Result(BOOTED_B)})
    OstreeAdminUpdater(m).rollback()
    deploy = [c for c in m.commands if "admin deploy" in c]
    assert len(deploy) == 1 and deploy[0].endswith(A) and "--retain" in deploy[0]
    assert any("refspec=%s" in c and "kolapy/x86_64/ref" in c for c in m.commands)


def test_ostree_admin_rollback_needs_two_deployments() -> None:
    m = FakeMachine({"ostree admin status": Result(f"* debian {A}.0\n")})
    with pytest.raises(UpdateError, match="nothing to roll back"):
        OstreeAdminUpdater(m).rollback()


def test_ostree_admin_rebase_pulls_remote_refs_only() -> None:
    m = FakeMachine({"ostree admin status": Result(BOOTED_B)})
    OstreeAdminUpdater(m).rebase("kolapy-upgrade:kolapy/x86_64/ref")
    assert any("pull kolapy-upgrade kolapy/x86_64/ref" in c for c in m.commands)
    m2 = FakeMachine({"ostree admin status": Result(BOOTED_B)})
    OstreeAdminUpdater(m2).rebase("local/branch")
    assert not any(" pull " in c for c in m2.commands)
    assert any(c.endswith("admin deploy --os=debian local/branch") for c in m2.commands)


def test_rpm_ostree_commands() -> None:
    m = FakeMachine({})
    u = RpmOstreeUpdater(m)
    u.rebase(":local"), u.rollback(), u.deploy(A), u.unlock(hotfix=True)
    assert [c.split("sudo -n ")[-1] for c in m.commands] == [
        "rpm-ostree rebase :local", "rpm-ostree rollback", f"rpm-ostree deploy {A}",
        "rpm-ostree usroverlay --hotfix",
    ]


def test_make_commit_layers_files_on_the_parent() -> None:
    m = FakeMachine({"ostree --repo=/ostree/repo commit": Result(f"{B}\n")})
    assert make_commit(m, A, "kolapy/t", "v2", {"/usr/share/x": "hi"}) == B
    commit = next(c for c in m.commands if " commit " in c)
    assert f"--tree=ref={A}" in commit and "--tree=dir=" in commit
    assert "--add-metadata-string=version=v2" in commit and "--branch=kolapy/t" in commit


def test_make_commit_rejects_files_outside_usr() -> None:
    with pytest.raises(ValueError, match="/usr"):
        make_commit(FakeMachine({}), A, "b", "v", {"/etc/x": "no"})


def test_make_commit_without_checksum_fails() -> None:
    with pytest.raises(UpdateError, match="no checksum"):
        make_commit(FakeMachine({}), A, "b", "v")
