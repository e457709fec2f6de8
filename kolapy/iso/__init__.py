"""Live ISOs: the reference live ISO (:mod:`kolapy.iso.build`), its embed and
kernel-argument areas (:mod:`kolapy.ignition.iso`, :mod:`kolapy.iso.kargs`),
machines booting ISOs (:mod:`kolapy.iso.media`) and kola's testiso scenarios
(:mod:`kolapy.iso.scenarios`).  See docs/iso.md.

Not imported by :mod:`kolapy.refimage`: this package is not part of the reference
qcow2's recipe hash (the ISO has its own cache key).
"""
