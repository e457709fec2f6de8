"""Atomic updates of the machine under test, behind one small API.

Tests talk to an :class:`Updater`; :func:`updater_for` picks the backend:

* :class:`RpmOstreeUpdater` when the image has ``rpm-ostree`` (NestOS, Fedora CoreOS):
  ``rpm-ostree status --json``, ``rebase``, ``upgrade``, ``deploy``, ``rollback``.
* :class:`OstreeAdminUpdater` otherwise (the reference image): ``ostree admin``.

Every mutating call only *stages* a change for the next boot; the caller reboots
(``machine.reboot()``, which proves the boot_id changed) and checks
:meth:`Updater.status` again.

Rollback semantics.  ``rpm-ostree rollback`` reorders the deployments: the
previous deployment (with the ``/etc`` it had) becomes the default.  ostree 2022.7
has no ``admin set-default`` and ``undeploy`` refuses the booted deployment, so
:class:`OstreeAdminUpdater` redeploys the rollback deployment's commit (with its
origin) as the new default: the same commit boots, and its ``/etc`` is a 3-way
merge of the booted deployment's.  :attr:`Updater.rollback_merges_etc` says which
behaviour the backend has.  ``/var`` is shared by all deployments either way.
"""

from __future__ import annotations

import abc
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kolapy.errors import KolapyError

#: The ostree repo of the booted system (both backends share it).
SYSROOT_REPO = "/ostree/repo"


class UpdateError(KolapyError):
    """The guest's status could not be read or understood."""


class _Runner(Protocol):
    """What an updater needs from a machine (``kolapy.Machine`` has it)."""

    def succeed(self, cmd: Any, timeout: float | None = None) -> str: ...

    def run(self, cmd: Any, timeout: float | None = None) -> Any: ...


@dataclass(frozen=True)
class Deployment:
    """One ostree deployment as the status shows it."""

    osname: str
    checksum: str
    serial: int
    version: str | None = None
    origin: str | None = None
    """The origin refspec (``remote:ref`` or a local ``ref``), if any."""
    booted: bool = False
    staged: bool = False
    pinned: bool = False
    unlocked: str = "none"
    """``none``, ``development``, ``hotfix`` or ``transient``."""

    @property
    def id(self) -> str:
        """``<osname>-<checksum>.<serial>`` as rpm-ostree names it."""
        return f"{self.osname}-{self.checksum}.{self.serial}"


@dataclass(frozen=True)
class Status:
    """All deployments, in boot order: the first is the default for the next boot."""

    deployments: tuple[Deployment, ...]

    @property
    def booted(self) -> Deployment:
        """The running deployment (exactly one must be)."""
        booted = [d for d in self.deployments if d.booted]
        if len(booted) != 1:
            raise UpdateError(f"expected one booted deployment, found {len(booted)}")
        return booted[0]

    @property
    def default(self) -> Deployment:
        """What the next boot starts (the first deployment)."""
        if not self.deployments:
            raise UpdateError("no deployments")
        return self.deployments[0]

    @property
    def staged(self) -> Deployment | None:
        """The deployment the next boot switches to, if it is not the booted one."""
        first = self.default
        return None if first.booted else first

    @property
    def rollback(self) -> Deployment | None:
        """The deployment :meth:`Updater.rollback` returns to.

        After an update is staged that is the booted one; otherwise the first
        deployment after the booted one (ostree's and rpm-ostree's ``rollback``).
        """
        if self.staged is not None:
            return self.booted
        index = self.deployments.index(self.booted)
        rest = self.deployments[index + 1 :]
        return rest[0] if rest else None


# --------------------------------------------------------------------------- parsing


def parse_rpm_ostree_status(text: str) -> Status:
    """Parse ``rpm-ostree status --json``."""
    try:
        data = json.loads(text)
        raw = data["deployments"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UpdateError(
            f"rpm-ostree status --json: unexpected output ({exc}): {text[:300]!r}"
        ) from exc
    deployments = []
    for d in raw:
        origin = d.get("origin") or d.get("container-image-reference")
        deployments.append(
            Deployment(
                osname=str(d.get("osname", "")),
                checksum=str(d["checksum"]),
                serial=int(d.get("serial", 0)),
                version=d.get("version") or None,
                origin=str(origin) if origin else None,
                booted=bool(d.get("booted", False)),
                staged=bool(d.get("staged", False)),
                pinned=bool(d.get("pinned", False)),
                unlocked=str(d.get("unlocked") or "none"),
            )
        )
    return Status(tuple(deployments))


_HEADER = re.compile(
    r"^(?P<mark>[* ]) (?P<osname>\S+) (?P<csum>[0-9a-f]{64})\.(?P<serial>\d+)"
    r"(?: \((?P<flags>[^)]*)\))?\s*$"
)
_FIELD = re.compile(r"^\s+(?P<key>[A-Za-z][A-Za-z ]*?):\s*(?P<value>.*?)\s*$")


def parse_ostree_admin_status(text: str) -> Status:
    """Parse ``ostree admin status`` (ostree 2022.7's text format).

    Each deployment is a header ``[*] <osname> <checksum>.<serial> [(flags)]``
    (``*`` marks the booted one; flags such as ``staged``, ``pending``, ``rollback``)
    followed by indented ``Key: value`` lines (``Version``, ``origin refspec``,
    ``Pinned``, ``Unlocked``).
    """
    entries: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        head = _HEADER.match(line)
        if head:
            flags = {f.strip() for f in (head["flags"] or "").split(",") if f.strip()}
            entries.append(
                dict(
                    osname=head["osname"],
                    checksum=head["csum"],
                    serial=int(head["serial"]),
                    booted=head["mark"] == "*",
                    staged="staged" in flags,
                )
            )
            continue
        field = _FIELD.match(line)
        if field and entries:
            key, value = field["key"].lower(), field["value"]
            if key == "version":
                entries[-1]["version"] = value or None
            elif key == "origin refspec":
                entries[-1]["origin"] = value or None
            elif key == "pinned":
                entries[-1]["pinned"] = value == "yes"
            elif key == "unlocked":
                entries[-1]["unlocked"] = value
            continue
        if entries and line.startswith(" "):
            continue  # other detail lines (GPG, "origin: <unknown origin type>", ...)
        raise UpdateError(f"ostree admin status: unexpected line {line!r}")
    if not entries:
        raise UpdateError(f"ostree admin status: no deployment in {text[:300]!r}")
    return Status(tuple(Deployment(**e) for e in entries))


# --------------------------------------------------------------------------- backends


class Updater(abc.ABC):
    """Stage, roll back and inspect ostree deployments of one machine."""

    #: Whether :meth:`rollback` carries the booted deployment's ``/etc`` changes
    #: (3-way merge) into the deployment it returns to.
    rollback_merges_etc: bool = False

    def __init__(self, machine: _Runner) -> None:
        self.machine = machine

    def _sudo(self, *args: str, timeout: float = 600.0) -> str:
        return self.machine.succeed("sudo -n " + shlex.join(args), timeout=timeout)

    @abc.abstractmethod
    def status(self) -> Status:
        """All deployments, booted/staged/rollback, checksums and versions."""

    @abc.abstractmethod
    def rebase(self, refspec: str) -> None:
        """Switch the origin to ``refspec`` (``remote:ref`` is pulled first) and stage its head."""

    @abc.abstractmethod
    def upgrade(self) -> None:
        """Pull the booted origin and stage its newest commit."""

    @abc.abstractmethod
    def deploy(self, checksum: str) -> None:
        """Stage commit ``checksum`` (already in the sysroot repo) keeping the origin's ref."""

    @abc.abstractmethod
    def rollback(self) -> None:
        """Make :attr:`Status.rollback` the default for the next boot."""

    def pin(self, index: int, pinned: bool = True) -> None:
        """Pin (or unpin) deployment ``index`` so cleanups keep it."""
        args = ["ostree", "admin", "pin"] + ([] if pinned else ["--unpin"]) + [str(index)]
        self._sudo(*args)

    def unlock(self, hotfix: bool = False) -> None:
        """Make ``/usr`` writable: until the next boot, or (``hotfix``) for good."""
        self._sudo("ostree", "admin", "unlock", *(["--hotfix"] if hotfix else []))

    def add_remote(self, name: str, url: str, gpg_verify: bool = False) -> None:
        """Add (or replace) remote ``name`` in the sysroot repo."""
        self._sudo("ostree", f"--repo={SYSROOT_REPO}", "remote", "delete", "--if-exists", name)
        args = ["ostree", f"--repo={SYSROOT_REPO}", "remote", "add"]
        if not gpg_verify:
            args.append("--no-gpg-verify")
        self._sudo(*args, name, url)


class RpmOstreeUpdater(Updater):
    """rpm-ostree (NestOS)."""

    rollback_merges_etc = False

    def status(self) -> Status:
        return parse_rpm_ostree_status(self.machine.succeed("rpm-ostree status --json"))

    def rebase(self, refspec: str) -> None:
        self._sudo("rpm-ostree", "rebase", refspec)

    def upgrade(self) -> None:
        self._sudo("rpm-ostree", "upgrade")

    def deploy(self, checksum: str) -> None:
        self._sudo("rpm-ostree", "deploy", checksum)

    def rollback(self) -> None:
        self._sudo("rpm-ostree", "rollback")

    def unlock(self, hotfix: bool = False) -> None:
        self._sudo("rpm-ostree", "usroverlay", *(["--hotfix"] if hotfix else []))


class OstreeAdminUpdater(Updater):
    """Plain ``ostree admin`` (the reference image; ostree 2022.7)."""

    rollback_merges_etc = True

    def status(self) -> Status:
        return parse_ostree_admin_status(self.machine.succeed("sudo -n ostree admin status"))

    def _pull_if_remote(self, refspec: str) -> None:
        remote, sep, ref = refspec.rpartition(":")
        if sep and remote:
            self._sudo("ostree", f"--repo={SYSROOT_REPO}", "pull", remote, ref)

    def rebase(self, refspec: str) -> None:
        self._pull_if_remote(refspec)
        self._sudo("ostree", "admin", "deploy", f"--os={self.status().booted.osname}", refspec)

    def upgrade(self) -> None:
        self._sudo("ostree", "admin", "upgrade")

    def deploy(self, checksum: str) -> None:
        self._deploy_with_origin(checksum, self.status().booted)

    def rollback(self) -> None:
        status = self.status()
        target = status.rollback
        if target is None:
            raise UpdateError("nothing to roll back to: only one deployment")
        self._deploy_with_origin(target.checksum, target)

    def _deploy_with_origin(self, checksum: str, like: Deployment) -> None:
        # The origin file keeps the refspec the deployment follows; deploying a
        # bare checksum would otherwise make the checksum itself the origin.
        origin = f"/tmp/kolapy-origin-{checksum[:12]}"
        refspec = like.origin or checksum
        self.machine.succeed(
            f"printf '[origin]\\nrefspec=%s\\n' {shlex.quote(refspec)} > {origin}"
        )
        self._sudo(
            "ostree", "admin", "deploy", "--retain", f"--os={like.osname}",
            f"--origin-file={origin}", checksum,
        )


def updater_for(machine: _Runner) -> Updater:
    """The updater for ``machine``: rpm-ostree if the image has it, else ``ostree admin``."""
    if machine.run("command -v rpm-ostree").succeeded:
        return RpmOstreeUpdater(machine)
    return OstreeAdminUpdater(machine)


# --------------------------------------------------------------------------- commits


def make_commit(
    machine: _Runner,
    parent: str,
    branch: str,
    version: str,
    files: Mapping[str, str] | None = None,
    subject: str = "kolapy test commit",
) -> str:
    """Commit ``parent``'s tree (plus ``files``: path under ``/`` -> text) to ``branch``
    in the sysroot repo with metadata ``version``; returns the new checksum.

    Files are laid on top of the parent tree (``--tree=ref=`` then ``--tree=dir=``), so
    paths are relative to the deployment root (``/usr/share/foo`` -> ``usr/share/foo``).
    """
    # The overlay directory is made by root so its files are owned by root; no
    # --owner-uid/--no-xattrs: a commit filter makes ostree re-read the whole parent
    # tree (1m50 instead of 4 s under TCG).
    work = f"/tmp/kolapy-commit-{branch.replace('/', '_')}"
    script = [f"sudo -n rm -rf {work}", f"sudo -n mkdir -p {work}"]
    for path, text in (files or {}).items():
        rel = path.lstrip("/")
        if not rel.startswith("usr/"):
            raise ValueError(f"{path}: only files under /usr are part of an ostree commit")
        target = shlex.quote(f"{work}/{rel}")
        script.append(f"sudo -n mkdir -p {shlex.quote(work + '/' + rel.rsplit('/', 1)[0])}")
        script.append(f"printf '%s' {shlex.quote(text)} | sudo -n tee {target} >/dev/null")
    trees = [f"--tree=ref={parent}"] + ([f"--tree=dir={work}"] if files else [])
    script.append(
        "sudo -n "
        + shlex.join(
            [
                "ostree", f"--repo={SYSROOT_REPO}", "commit", f"--branch={branch}",
                f"--subject={subject}", f"--add-metadata-string=version={version}", *trees,
            ]
        )
    )
    out = machine.succeed(" && ".join(script), timeout=600)
    checksum = out.strip().splitlines()[-1].strip() if out.strip() else ""
    if not re.fullmatch(r"[0-9a-f]{64}", checksum):
        raise UpdateError(f"ostree commit printed no checksum: {out!r}")
    machine.succeed(f"sudo -n rm -rf {work}")
    return checksum


def commit_version(machine: _Runner, rev: str) -> str | None:
    """The ``version`` metadata of commit (or ref) ``rev`` in the sysroot repo."""
    result = machine.run(
        f"ostree --repo={SYSROOT_REPO} show --print-metadata-key=version {shlex.quote(rev)}"
    )
    if not result.succeeded:
        return None
    value = result.stdout.strip()
    return value[1:-1] if value.startswith("'") and value.endswith("'") else value or None
