"""Ignition for a static etcd cluster on kolapy's private cluster network.

One config serves every member: a run-once unit finds which of the cluster's
addresses this machine holds (kolapy gives member *i* 10.200.0.(11+i) on its
second NIC) and writes ``/run/kolapy-etcd.env`` (member name ``etcd-<last
octet>``, peer and client URLs, the initial cluster); a drop-in makes the
image's ``etcd.service`` (Debian's etcd-server, or the K8S variant's etcd)
read it.  The heartbeat (500 ms) and election timeout (5 s) are 5x and 5x
etcd's defaults: emulated members under load miss 100 ms heartbeats and
re-elect leaders over and over.  Two deliberate settings in the drop-in:

- ``Type=simple``: Debian's unit is ``Type=notify``, and etcd only notifies
  once a quorum of peers is up; members booting minutes apart under TCG would
  hit the start timeout.  Health is waited for by the test instead.
- ``Restart=no``: a member that is killed stays dead (etcd.cluster kills one
  and checks that the other two keep quorum).
"""

from __future__ import annotations

from collections.abc import Sequence

from kolapy.ignition import Ignition

CLIENT_PORT = 2379
PEER_PORT = 2380
ENV_FILE = "/run/kolapy-etcd.env"
SCRIPT = "/etc/kolapy/etcd-member.sh"
MEMBER_UNIT = "kolapy-etcd-member.service"
DATA_DIR = "/var/lib/etcd/kolapy"
HEARTBEAT_MS = 500
ELECTION_MS = 5000


def member_name(address: str) -> str:
    """The etcd member name of the machine with ``address``: ``etcd-<last octet>``."""
    return f"etcd-{address.rsplit('.', 1)[-1]}"


def client_url(address: str) -> str:
    return f"http://{address}:{CLIENT_PORT}"


def peer_url(address: str) -> str:
    return f"http://{address}:{PEER_PORT}"


def initial_cluster(addresses: Sequence[str]) -> str:
    return ",".join(f"{member_name(a)}={peer_url(a)}" for a in addresses)


def member_script(addresses: Sequence[str], token: str) -> str:
    """The script that writes this member's etcd environment from its address."""
    env = (
        "ETCD_NAME=etcd-${a##*.}\n"
        f"ETCD_DATA_DIR={DATA_DIR}\n"
        f"ETCD_LISTEN_PEER_URLS=http://$a:{PEER_PORT}\n"
        f"ETCD_INITIAL_ADVERTISE_PEER_URLS=http://$a:{PEER_PORT}\n"
        f"ETCD_LISTEN_CLIENT_URLS=http://$a:{CLIENT_PORT},http://127.0.0.1:{CLIENT_PORT}\n"
        f"ETCD_ADVERTISE_CLIENT_URLS=http://$a:{CLIENT_PORT}\n"
        f"ETCD_INITIAL_CLUSTER={initial_cluster(addresses)}\n"
        "ETCD_INITIAL_CLUSTER_STATE=new\n"
        f"ETCD_INITIAL_CLUSTER_TOKEN={token}\n"
        # Emulated members miss etcd's 100 ms heartbeat and re-elect all the time
        # ("server is likely overloaded"): timings fit for TCG on a loaded host.
        f"ETCD_HEARTBEAT_INTERVAL={HEARTBEAT_MS}\n"
        f"ETCD_ELECTION_TIMEOUT={ELECTION_MS}\n"
    )
    return (
        "#!/bin/sh\n"
        "# kolapy: this machine's etcd member, from its address on the cluster network\n"
        "set -eu\n"
        "for i in $(seq 600); do\n"
        f"    for a in {' '.join(addresses)}; do\n"
        '        if ip -4 -o addr show | grep -q " inet $a/"; then\n'
        f"            cat > {ENV_FILE}.tmp <<EOF\n{env}EOF\n"
        # etcd 3.4 runs on arm64 only when told so
        '            [ "$(uname -m)" != aarch64 ] || '
        f"echo ETCD_UNSUPPORTED_ARCH=arm64 >> {ENV_FILE}.tmp\n"
        f"            mv {ENV_FILE}.tmp {ENV_FILE}\n"
        "            exit 0\n"
        "        fi\n"
        "    done\n"
        "    sleep 1\n"
        "done\n"
        f"echo 'kolapy: none of {' '.join(addresses)} is on this machine' >&2\n"
        "exit 1\n"
    )


def etcd_cluster_ignition(addresses: Sequence[str], token: str = "kolapy-etcd") -> Ignition:
    """The one config every member of an etcd cluster on ``addresses`` boots with."""
    if len(set(addresses)) != len(addresses) or not addresses:
        raise ValueError(f"etcd cluster addresses must be distinct and non-empty: {addresses}")
    member_unit = (
        "[Unit]\n"
        "Description=kolapy: this machine's etcd member settings\n"
        "After=kolapy-privnet.service\n"
        "Before=etcd.service\n"
        "[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        f"ExecStart=/bin/sh {SCRIPT}\n"
    )
    dropin = (
        "[Unit]\n"
        f"Requires={MEMBER_UNIT}\n"
        f"After={MEMBER_UNIT}\n"
        "[Service]\n"
        "Type=simple\n"
        "Restart=no\n"
        f"EnvironmentFile={ENV_FILE}\n"
    )
    return (
        Ignition()
        .add_file(SCRIPT, member_script(addresses, token), mode=0o755)
        .add_unit(MEMBER_UNIT, member_unit)
        .add_unit("etcd.service", enabled=True, dropins={"10-kolapy-cluster.conf": dropin})
    )
