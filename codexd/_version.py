"""The version of codexd (its own module, so nothing imports the package root)."""

__version__ = "0.1.0"
