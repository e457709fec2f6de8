"""The Ignition configs of the ``ignition.*`` suite, as data (no pytest here).

Each kola test states its config once; :mod:`kolapy.ignition.verify` derives the
expectations from it.  The tests that merge and never reboot share one machine,
so their configs are merged into :data:`SHARED` (every one of those tests boots
with it: equal machine specs share a VM).  Some configs are written in Butane
(variants ``nestos`` and ``fcos``), as users may give them.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kolapy.ignition import Ignition, butane_to_ignition
from kolapy.transport.ssh import SSHKeyPair

# --------------------------------------------------------------------------- files

FILES_DIR = "/etc/kolapy-ign"
GZIP_TEXT = "a line Ignition had to gunzip\n" * 40


def _gzip_url(text: str) -> dict[str, str]:
    import base64

    # mtime=0: the same bytes every run, so the config (and the shared VM's key) is stable.
    data = gzip.compress(text.encode(), mtime=0)
    return {"source": "data:;base64," + base64.b64encode(data).decode(), "compression": "gzip"}


def files_config() -> Ignition:
    """``ignition.files``: inline/base64/compressed/appended files, dirs, links, overwrite."""
    cfg = (
        Ignition()
        .add_file(f"{FILES_DIR}/inline.txt", "inline text, percent-encoded: 100% ok\n",
                  mode=0o640, user="nobody")
        .add_file(f"{FILES_DIR}/binary.bin", b"\x00\x01\x02kolapy\xff\xfe", mode=0o600)
        .add_directory("/var/lib/kolapy-ign/private", mode=0o750, user="nobody")
        .add_link(f"{FILES_DIR}/symlink", f"{FILES_DIR}/inline.txt")
    )
    d = cfg.to_dict()
    storage = d.setdefault("storage", {})
    storage["files"] += [
        {"path": "/var/lib/kolapy-ign/compressed.txt", "mode": 0o644,
         "contents": _gzip_url(GZIP_TEXT)},
        {"path": f"{FILES_DIR}/appended.txt", "mode": 0o644,
         "contents": {"source": "data:,first%0A"},
         "append": [{"source": "data:,second%0A"}, _gzip_url("third, gzipped\n")]},
        # An image file replaced: overwrite is needed, the path exists.
        {"path": "/etc/motd", "overwrite": True, "mode": 0o644,
         "contents": {"source": "data:,kolapy%20replaced%20the%20image's%20motd%0A"}},
        {"path": f"{FILES_DIR}/owned-by-id", "mode": 0o604, "user": {"id": 65534},
         "group": {"id": 4}, "contents": {"source": "data:,owned%20by%20ids%0A"}},
    ]
    # Directory owner given by group name.
    storage["directories"][0]["group"] = {"name": "adm"}
    storage["links"].append({"path": f"{FILES_DIR}/hardlink", "target": f"{FILES_DIR}/appended.txt",
                             "hard": True})
    return Ignition.from_dict(d)


# --------------------------------------------------------------------------- passwd

USER = "kolapy-ign"
USER_HOME = "/var/home/kolapy-ign"
GROUP = "kolapy-grp"
GROUP_GID = 4242
USER_UID = 4243


def user_key(directory: Path) -> SSHKeyPair:
    """The test user's SSH key, written to ``directory``.

    Derived from a fixed seed, like Vagrant's well-known insecure key: the shared
    machine's config must be equal in every pytest process of a run.  It opens only
    a throwaway VM that listens on 127.0.0.1.
    """
    seed = hashlib.sha256(b"kolapy ignition.passwd test key (public, insecure)").digest()
    key = Ed25519PrivateKey.from_private_bytes(seed)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    public = f"{public} kolapy-ignition-passwd"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "id_kolapy_ign"
    path.write_text(private)
    path.chmod(0o600)
    path.with_name(path.name + ".pub").write_text(public + "\n")
    return SSHKeyPair(path, public, private)


def user_public_key() -> str:
    """The public half of :func:`user_key` (no file needed)."""
    seed = hashlib.sha256(b"kolapy ignition.passwd test key (public, insecure)").digest()
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{public} kolapy-ignition-passwd"


def passwd_config() -> Ignition:
    """``ignition.passwd``, written in Butane (variant nestos)."""
    return butane_to_ignition(f"""\
variant: nestos
version: 1.0.0
passwd:
  groups:
    - name: {GROUP}
      gid: {GROUP_GID}
  users:
    - name: {USER}
      uid: {USER_UID}
      gecos: kolapy Ignition test user
      home_dir: {USER_HOME}
      shell: /bin/sh
      primary_group: {GROUP}
      groups: [adm]
      ssh_authorized_keys:
        - {user_public_key()}
""", source="ignition.passwd")


# --------------------------------------------------------------------------- systemd

MASKED_UNIT = "systemd-networkd-wait-online.service"
"""An image unit the config masks (nothing on the shared machine waits for it)."""
INSTANCE = "kolapy-ign-inst@bar.service"

_ONESHOT = """\
[Unit]
Description=kolapy ignition.systemd: {what}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'echo "{value}" > {stamp}'

[Install]
WantedBy=multi-user.target
"""


def systemd_config() -> Ignition:
    """``ignition.systemd``: enabled (+ drop-in), disabled, masked, an enabled instance."""
    return (
        Ignition()
        .add_unit("kolapy-ign-enabled.service",
                  _ONESHOT.format(what="enabled", value="$KOLAPY_DROPIN",
                                  stamp="/run/kolapy-ign-enabled"),
                  enabled=True,
                  dropins={"10-kolapy.conf": "[Service]\nEnvironment=KOLAPY_DROPIN=from-dropin\n"})
        .add_unit("kolapy-ign-disabled.service",
                  _ONESHOT.format(what="disabled", value="ran", stamp="/run/kolapy-ign-disabled"),
                  enabled=False)
        .add_unit("kolapy-ign-inst@.service",
                  _ONESHOT.format(what="instance %i", value="%i",
                                  stamp="/run/kolapy-ign-inst-%i"))
        .add_unit(INSTANCE, enabled=True)
        .merge(Ignition.from_dict({"ignition": {"version": "3.0.0"},
                                   "systemd": {"units": [{"name": MASKED_UNIT, "mask": True}]}}))
    )


# --------------------------------------------------------------------------- hostname

HOSTNAME = "kolapy-ignhost"


def hostname_config() -> Ignition:
    """``ignition.hostname``: /etc/hostname (the image has one: overwrite)."""
    return Ignition.from_dict({
        "ignition": {"version": "3.3.0"},
        "storage": {"files": [{"path": "/etc/hostname", "overwrite": True, "mode": 0o644,
                               "contents": {"source": f"data:,{HOSTNAME}%0A"}}]},
    })


def shared_config() -> Ignition:
    """Every shared (non-rebooting) test's config, merged: one machine for all of them."""
    return files_config().merge(passwd_config()).merge(systemd_config()).merge(hostname_config())


# --------------------------------------------------------------------------- storage

DATA_SERIAL = "kolapydata"
DATA_LABEL = "kolapy-data"
DATA_MOUNT = "/var/mnt/data"
DATA_DISK = f"/dev/disk/by-id/virtio-{DATA_SERIAL}"


def storage_config() -> Ignition:
    """``ignition.storage``, written in Butane (variant fcos, ``with_mount_unit``)."""
    return butane_to_ignition(f"""\
variant: fcos
version: 1.4.0
storage:
  filesystems:
    - device: {DATA_DISK}
      format: ext4
      label: {DATA_LABEL}
      wipe_filesystem: true
      path: {DATA_MOUNT}
      with_mount_unit: true
  files:
    - path: {DATA_MOUNT}/from-ignition
      mode: 0644
      contents:
        inline: written into the new filesystem by Ignition
""", source="ignition.storage")


# --------------------------------------------------------------------------- once

ONCE_MARKER = "/var/lib/kolapy-once/marker"
ONCE_LOG = "/var/lib/kolapy-once/runs"


def once_config() -> Ignition:
    """``ignition.once``: a marker file and a file Ignition appends to on every run."""
    d = Ignition().add_file(ONCE_MARKER, "left by Ignition on the first boot\n").to_dict()
    d["storage"]["files"].append({"path": ONCE_LOG, "append": [{"source": "data:,ran%0A"}]})
    return Ignition.from_dict(d)


# --------------------------------------------------------------------------- remote

REMOTE_DIR = "/etc/kolapy-remote"


def remote_piece(name: str) -> Ignition:
    """A config served over HTTP that leaves ``/etc/kolapy-remote/<name>``."""
    return Ignition("3.0.0").add_file(f"{REMOTE_DIR}/{name}", f"from {name}\n")


def sha512(data: bytes) -> str:
    """Ignition's ``verification.hash`` value for ``data``."""
    return "sha512-" + hashlib.sha512(data).hexdigest()
