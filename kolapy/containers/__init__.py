"""Container engines under test (podman, docker, isula): engine table, test image, workflow.

The kola suites ``podman.*``, ``docker.*`` and ``isula.*`` (kolapy/suites/) are thin:
everything they share lives here, written once and parametrised by :class:`Engine`.
"""
