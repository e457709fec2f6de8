"""kola test ``etcd.cluster``: three machines form an etcd cluster from Ignition alone.

Every member boots with the same config (:mod:`kolapy.k8s.etcd`); each finds
its own name and URLs from its address on kolapy's private network.  Then a key
written through one member is read through another; one member's etcd is
killed (SIGKILL, not restarted); the other two keep quorum: they still take a
write and serve it, and the cluster's health names the dead member.
"""

from __future__ import annotations

import json

import pytest

from kolapy import Machine, kola
from kolapy.errors import CommandFailedError
from kolapy.k8s.etcd import client_url, etcd_cluster_ignition, member_name
from kolapy.machine.privnet import address_for

SIZE = 3
ADDRESSES = [address_for(i) for i in range(SIZE)]


# etcd's own errors that its client contract calls transient: the request may or may
# not have been applied, and the client is to retry it.  Under TCG on a loaded host a
# raft round can outlast the server's 15 s request timeout (5 s + 2 elections).
TRANSIENT = ("etcdserver: request timed out", "etcdserver: leader changed",
             "etcdserver: no leader", "etcdserver: too many requests")
ATTEMPTS = 4


def etcdctl(machine: Machine, address: str, args: str, timeout: float = 60.0) -> str:
    """etcdctl (API v3) against the member at ``address``; transient errors are retried.

    Only for idempotent requests (get, put of a fixed value, member list).
    """
    cmd = f"ETCDCTL_API=3 etcdctl --command-timeout=30s --endpoints={client_url(address)} {args}"
    attempt = 1
    while (res := machine.run(cmd, timeout)).failed:
        transient = any(t in res.stdout + res.stderr for t in TRANSIENT)
        if not transient or attempt == ATTEMPTS:
            raise CommandFailedError(res.command, res.rc, res.stdout, res.stderr,
                                     f"failed (attempt {attempt} of {ATTEMPTS})")
        attempt += 1
    return res.stdout


@kola(
    name="etcd.cluster",
    cluster_size=SIZE,
    ignition=etcd_cluster_ignition(ADDRESSES),
    tags=("etcd",),
    description="3 members from Ignition alone: a key crosses members; quorum survives a kill",
)
def test_cluster(cluster) -> None:  # type: ignore[no-untyped-def]
    a, b, c = cluster.machines
    addr_a, addr_b, addr_c = (cluster.address(m) for m in (a, b, c))
    missing = a.run("command -v etcd && command -v etcdctl")
    if missing.failed:
        pytest.skip("etcd or etcdctl is not in the image (Debian: etcd-server, etcd-client)")
    everyone = ",".join(client_url(x) for x in ADDRESSES)
    health = f"ETCDCTL_API=3 etcdctl --endpoints={everyone} endpoint health"
    a.wait_until_succeeds(health, timeout=300)

    members = json.loads(etcdctl(a, addr_a, "member list -w json"))["members"]
    assert sorted(m["name"] for m in members) == sorted(member_name(x) for x in ADDRESSES)

    # a key written through one member is read through another
    etcdctl(a, addr_a, "put kolapy/greeting hello-from-a")
    got = etcdctl(b, addr_b, "get --print-value-only kolapy/greeting").strip()
    assert got == "hello-from-a"

    # kill one member: its etcd is gone for good (the drop-in says Restart=no)
    c.succeed("sudo -n systemctl kill --signal=SIGKILL etcd.service")
    c.wait_until_succeeds("! pidof etcd", timeout=60)
    c.fail(f"ETCDCTL_API=3 etcdctl --dial-timeout=3s --command-timeout=5s "
           f"--endpoints={client_url(addr_c)} get kolapy/greeting")

    # the other two keep quorum: a write through b, read back through a
    etcdctl(b, addr_b, "put kolapy/after-kill quorum-kept")
    got = etcdctl(a, addr_a, "get --print-value-only kolapy/after-kill").strip()
    assert got == "quorum-kept"
    alive = f"{client_url(addr_a)},{client_url(addr_b)}"
    status = json.loads(
        a.succeed(f"ETCDCTL_API=3 etcdctl --endpoints={alive} endpoint status -w json")
    )
    leaders = {s["Status"]["leader"] for s in status}
    assert len(leaders) == 1 and 0 not in leaders, status
    # the cluster's own health check names the dead member
    sick = a.run(f"{health} --dial-timeout=3s --command-timeout=5s")
    assert sick.failed and client_url(addr_c) in sick.stdout + sick.stderr, sick
