"""Cluster: the machines of one test (kola ``ClusterSize``) on one private network."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from kolapy.machine.privnet import Hub

if TYPE_CHECKING:
    from kolapy.machine.libvirt import LibvirtSegment


class Cluster:
    """Several machines of one test that reach each other on a private segment.

    ``cluster.machines[i]`` has the address ``cluster.address(i)``
    (10.200.0.11, .12, ...) on its second NIC; the first NIC stays the
    user-mode one the harness reaches over SSH.  A cluster of one machine has
    no private network (``address`` raises).
    """

    def __init__(self, machines: Sequence[Any], hub: Hub | LibvirtSegment | None = None) -> None:
        self.machines: list[Any] = list(machines)
        self.hub = hub

    def __len__(self) -> int:
        return len(self.machines)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.machines)

    def __getitem__(self, index: int) -> Any:
        return self.machines[index]

    def address(self, member: int | Any) -> str:
        """The private IPv4 address of a member (by index or machine)."""
        if self.hub is None:
            raise LookupError("this cluster has a single machine and no private network")
        index = member if isinstance(member, int) else self.machines.index(member)
        return self.hub.nics[index].address

    @property
    def addresses(self) -> list[str]:
        """Private addresses of all members, in order."""
        return [self.address(i) for i in range(len(self.machines))]

    def __repr__(self) -> str:
        names = ", ".join(getattr(m, "name", "?") for m in self.machines)
        return f"Cluster([{names}])"
