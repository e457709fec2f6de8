"""Ignition v3 configs: build, load, merge, validate; a Butane subset; live ISO embedding.

Everything a test author needs::

    from kolapy.ignition import Ignition, harness_fragment, validate, butane_to_ignition
    from kolapy.ignition import embed_in_iso, read_from_iso
"""

from kolapy.ignition.config import Ignition, butane_to_ignition, data_url
from kolapy.ignition.harness import harness_fragment
from kolapy.ignition.iso import embed_in_iso, read_from_iso
from kolapy.ignition.spec import DEFAULT_VERSION, SUPPORTED_VERSIONS
from kolapy.ignition.validation import validate

__all__ = [
    "DEFAULT_VERSION",
    "SUPPORTED_VERSIONS",
    "Ignition",
    "butane_to_ignition",
    "data_url",
    "embed_in_iso",
    "harness_fragment",
    "read_from_iso",
    "validate",
]
