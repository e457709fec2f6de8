"""kola external tests: ``DIR/tests/kola`` executables as kolapy tests.

* :mod:`~kolapy.external.discover` finds the tests and names them as kola does;
* :mod:`~kolapy.external.metadata` reads ``kola.json`` / inline metadata (strict);
* :mod:`~kolapy.external.config` loads ``config.ign`` / ``config.bu``;
* :mod:`~kolapy.external.guest` is the shell that runs in the guest;
* :mod:`~kolapy.external.run` drives one test over SSH (reboots, timeout, verdict);
* :mod:`~kolapy.external.items` makes pytest items of them.

See docs/external-tests.md.
"""

from kolapy.external.discover import ExtTest, discover
from kolapy.external.metadata import ExtMeta, parse_metadata

__all__ = ["ExtMeta", "ExtTest", "discover", "parse_metadata"]
