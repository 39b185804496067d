"""memgate's harness: runs models in isolated processes and decides whether memory leaks."""

from runtime.version import __version__

__all__ = ["__version__"]
