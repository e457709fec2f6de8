"""kolapy: kola for pytest."""
