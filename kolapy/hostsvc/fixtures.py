"""pytest fixtures for host services: ``host_http`` and ``host_registry``.

Each is a factory, so a test starts what it needs and names the machines that
reach it::

    def test_remote(machine, host_http):
        srv = host_http(repo_dir, machine)       # srv.url == "http://10.0.2.100:8080"
        machine.succeed(["curl", "-f", f"{srv.url}/config"])

    def test_push(machine, host_registry):
        reg = host_registry(machine)             # reg.address == "10.0.2.100:5000"

Services stop when the test ends (pass, failure or Ctrl-C); their logs stay in
``<output-dir>/<kola test>/hostsvc/``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kolapy.hostsvc.forward import HTTP_PORTS, REGISTRY_PORT, attach, detach
from kolapy.hostsvc.http import HttpService
from kolapy.hostsvc.registry import RegistryService


@dataclass(frozen=True)
class HttpEndpoint:
    """A running :class:`HttpService` as the guests see it."""

    url: str
    """``http://10.0.2.100:<port>`` (no trailing slash)."""
    log_path: Path
    service: HttpService


@dataclass(frozen=True)
class RegistryEndpoint:
    """A running :class:`RegistryService` as the guests see it."""

    address: str
    """``10.0.2.100:5000``: the host part of image names (``<address>/repo:tag``)."""
    log_path: Path
    service: RegistryService


def _machines(items: tuple[Any, ...]) -> list[Any]:
    """Machines and clusters, flattened to machines."""
    out: list[Any] = []
    for item in items:
        out += list(getattr(item, "machines", [item]))
    return out


def service_dir(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Path:
    """``<output-dir>/<kola test>/hostsvc`` (a temp dir outside kola runs)."""
    from kolapy.report.outdir import safe_component
    from kolapy.session import PLAN

    plan = request.node.stash.get(PLAN, None)
    ks = _session(request)
    if plan is None or ks is None:
        return Path(tmp_path_factory.mktemp("hostsvc"))
    d = ks.output_dir / safe_component(plan.parent) / "hostsvc"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _session(request: pytest.FixtureRequest) -> Any:
    from kolapy.plugin import SESSION

    return request.config.stash.get(SESSION, None)


class _Attachments:
    """Services and links of one test, undone in reverse order."""

    def __init__(self) -> None:
        self.stack = contextlib.ExitStack()

    def serve(self, service: Any, machines: list[Any], port: int) -> str:
        self.stack.callback(service.close)
        address = ""
        for m in machines:
            address = attach(m, service, port)
            self.stack.callback(detach, m, port, service)
        return address


@pytest.fixture
def host_http(
    request: pytest.FixtureRequest, tmp_path_factory: Any
) -> Iterator[Callable[..., HttpEndpoint]]:
    """Factory: ``host_http(directory, *machines, port=None)`` serves ``directory``.

    Read-only HTTP, every request logged.  Each call takes the next free HTTP
    guest port (8080, then 8081) unless ``port`` says which.
    """
    att = _Attachments()
    used: list[int] = []

    def start(directory: Path | str, *machines: Any, port: int | None = None) -> HttpEndpoint:
        chosen = port if port is not None else next((p for p in HTTP_PORTS if p not in used), 0)
        if not chosen:
            raise RuntimeError(f"every HTTP guest port {HTTP_PORTS} is in use in this test")
        used.append(chosen)
        log = service_dir(request, tmp_path_factory) / f"http-{chosen}.log"
        srv = HttpService(directory, log).start()
        address = att.serve(srv, _machines(machines), chosen)
        return HttpEndpoint(f"http://{address}", log, srv)

    with att.stack:
        yield start


@pytest.fixture
def host_registry(
    request: pytest.FixtureRequest, tmp_path_factory: Any
) -> Iterator[Callable[..., RegistryEndpoint]]:
    """Factory: ``host_registry(*machines)`` starts a registry the machines reach."""
    att = _Attachments()

    def start(*machines: Any) -> RegistryEndpoint:
        log = service_dir(request, tmp_path_factory) / "registry.log"
        reg = RegistryService(log).start()
        address = att.serve(reg, _machines(machines), REGISTRY_PORT)
        return RegistryEndpoint(address, log, reg)

    with att.stack:
        yield start
