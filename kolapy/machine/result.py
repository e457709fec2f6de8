"""Kept for imports written before :class:`CommandResult` moved to :mod:`kolapy.result`."""

from kolapy.result import CommandResult

__all__ = ["CommandResult"]
