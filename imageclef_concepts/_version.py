"""The library's version, written once: read by packaging, model files and ``--version``."""

__version__ = "0.1.0"
