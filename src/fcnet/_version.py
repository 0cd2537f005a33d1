"""The version of fcnet (a leaf module: everything may import it)."""

__version__ = "0.2.0"
