"""The library's own exceptions.

Bad argument values raise the built-in :class:`ValueError` and bad types
:class:`TypeError`; the classes here are for conditions of the library itself
(a corrupted data file, a checkpoint that does not match, a diverging run).
"""

from __future__ import annotations

__all__ = [
    "FcnetError",
    "DatasetError",
    "DatasetFormatError",
    "DatasetIntegrityError",
    "CheckpointError",
    "NonFiniteLossError",
]


class FcnetError(Exception):
    """Base class of every error raised by fcnet for its own conditions."""


class DatasetError(FcnetError):
    """A data set could not be read or trusted."""


class DatasetFormatError(DatasetError, ValueError):
    """A data file does not follow its format (bad magic number, size, dimensions...)."""


class DatasetIntegrityError(DatasetError):
    """A data file decodes, but its content does not match the published checksum."""


class CheckpointError(FcnetError):
    """A saved model or training state is corrupted, foreign, or does not fit."""


class NonFiniteLossError(FcnetError, FloatingPointError):
    """The training loss became NaN or infinite."""
