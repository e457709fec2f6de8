"""Cluster: the machines of one test (kola ``ClusterSize``) on one private network.

Members boot with the test's one Ignition config unless the test gives each its
own (``@kola(member_ignition=fn)``): ``fn(index, addresses)`` returns member
``index``'s config, which is merged over the test's ``ignition`` (kola's cluster
tests do the same by creating each machine with its own userdata).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from kolapy.errors import BadInputError
from kolapy.machine.privnet import Hub, address_for

if TYPE_CHECKING:
    from kolapy.ignition import Ignition
    from kolapy.machine.libvirt import LibvirtSegment

MemberIgnition: TypeAlias = Callable[[int, tuple[str, ...]], Any]
"""A cluster test's per-member config: ``fn(index, addresses)`` -> an Ignition config
(:class:`~kolapy.ignition.Ignition`, dict, path to ``.ign``/``.bu``, or None) for the
member ``index`` (0-based) of a cluster whose members have ``addresses`` (in order)."""


def member_addresses(size: int) -> tuple[str, ...]:
    """The private addresses of a cluster of ``size``: 10.200.0.11, .12, ... (in order)."""
    return tuple(address_for(i) for i in range(size))


def member_configs(make: MemberIgnition, size: int) -> tuple[Ignition, ...]:
    """``make``'s config for each member of a cluster of ``size``, as :class:`Ignition`.

    Raises :class:`~kolapy.errors.BadInputError` (one line naming the member) when
    ``make`` raises or returns something that is not a config.
    """
    from kolapy.machine.ignition_config import to_ignition

    addresses = member_addresses(size)
    configs = []
    for index in range(size):
        try:
            configs.append(to_ignition(make(index, addresses)))
        except BadInputError as exc:
            raise BadInputError(f"member_ignition({index}, ...): {exc}") from None
        except Exception as exc:  # the test's own code: any mistake is bad input
            raise BadInputError(
                f"member_ignition({index}, {list(addresses)}) raised "
                f"{type(exc).__name__}: {exc}") from None
    return tuple(configs)


def config_digest(config: Ignition) -> str:
    """A short stable digest of a config (equal configs, equal digests)."""
    blob = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class ClusterMember:
    """What the reports say about one member: its place and the config it booted with."""

    index: int
    address: str
    config_sha256: str
    """:func:`config_digest` of the test's config for this member (the test's
    ``ignition`` merged with its ``member_ignition``), before the harness's and the
    private network's fragments: members with the same config have the same digest."""
    ignition_artifact: str = ""
    """The member's whole boot config, relative to the output dir
    (``<test>/<machine>/ignition.json``)."""

    def to_report(self) -> dict[str, Any]:
        """The member's entry in report.json's ``cluster_members``."""
        return {"member": self.index, "address": self.address,
                "config_sha256": self.config_sha256, "ignition": self.ignition_artifact}


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
