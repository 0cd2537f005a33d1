"""The version of fcnet (a leaf module: everything may import it)."""

__version__ = "0.4.0"
