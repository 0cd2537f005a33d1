"""A strict reader (and a small writer) for the IDX format of MNIST-style data sets.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim`` big-endian
unsigned 32-bit dimensions, then the payload: ``prod(dims)`` items of the announced type,
big-endian, and nothing else. Every one of these is checked; a file that breaks any of them
raises :class:`~fcnet.exceptions.DatasetFormatError` naming the file and the fault, so a
truncated download or a wrong file never turns into a silently wrong array.

Files whose name ends in ``.gz`` must be gzip-compressed (one or more members); any other
name is read as raw IDX.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from fcnet._io import atomic_write_bytes
from fcnet.exceptions import DatasetFormatError

__all__ = ["IDX_TYPES", "decode_idx", "encode_idx", "read_idx", "read_idx_bytes", "write_idx"]

#: IDX type codes and the (big-endian) numpy dtype each one announces.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_TYPE_NAMES = ", ".join(f"0x{code:02X} {dt.name}" for code, dt in IDX_TYPES.items())
_GZIP_MAGIC = b"\x1f\x8b"


def _is_gzip_name(path: str | os.PathLike[str]) -> bool:
    return os.fspath(path).endswith(".gz")


def _gunzip(raw: bytes, name: str) -> bytes:
    """Decompresses a whole gzip file, mapping every failure to DatasetFormatError."""
    if raw[:2] != _GZIP_MAGIC:
        raise DatasetFormatError(
            f"{name}: not gzip-compressed (starts with {raw[:2].hex() or 'nothing'}, "
            f"a .gz file starts with 1f8b)"
        )
    try:
        # zlib in one call is ~10% faster than gzip.decompress; it stops after the first
        # member, so multi-member files (legal gzip) fall back to the gzip module.
        inflater = zlib.decompressobj(wbits=31)
        data = inflater.decompress(raw)
        if not inflater.eof:
            raise DatasetFormatError(
                f"{name}: truncated gzip stream (the compressed data ends before its "
                f"end-of-stream marker)"
            )
        if inflater.unused_data:
            data = gzip.decompress(raw)
    except DatasetFormatError:
        raise
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        # gzip.BadGzipFile is an OSError; a truncated later member raises EOFError.
        raise DatasetFormatError(f"{name}: corrupt gzip stream ({exc})") from exc
    return data


def read_idx_bytes(path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """Reads a file and returns its bytes as stored and its uncompressed IDX content.

    Args:
        path: An IDX file, gzip-compressed when its name ends in ``.gz``.

    Returns:
        ``(stored, content)``: the file's bytes, and the IDX bytes after decompression
        (the same object for an uncompressed file).

    Raises:
        FileNotFoundError: The file does not exist.
        DatasetFormatError: A ``.gz`` file is not a complete, valid gzip stream.
    """
    path = Path(path)
    stored = path.read_bytes()
    content = _gunzip(stored, str(path)) if _is_gzip_name(path) else stored
    return stored, content


def decode_idx(data: bytes | bytearray | memoryview, name: str = "<bytes>") -> np.ndarray:
    """Decodes uncompressed IDX bytes into an array, checking every field strictly.

    Args:
        data: The whole content of an IDX file.
        name: How to name the data in error messages (usually its path).

    Returns:
        A native-byte-order array with the announced shape and type. It shares memory
        with ``data`` when that is a writable ``bytearray`` of single-byte items;
        otherwise it is a fresh, writable copy.

    Raises:
        TypeError: ``data`` is not bytes-like.
        DatasetFormatError: The magic number, the type code, the dimensions or the
            payload size is wrong.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
    view = memoryview(data).cast("B")
    size = len(view)
    if size < 4:
        raise DatasetFormatError(
            f"{name}: truncated header: {size} bytes, an IDX file has at least 4 (the magic number)"
        )
    zero0, zero1, type_code, ndim = view[0], view[1], view[2], view[3]
    if zero0 != 0 or zero1 != 0:
        hint = " (it looks gzip-compressed: name it .gz)" if bytes(view[:2]) == _GZIP_MAGIC else ""
        raise DatasetFormatError(
            f"{name}: bad magic number 0x{bytes(view[:4]).hex()}: an IDX file starts with "
            f"two zero bytes{hint}"
        )
    if type_code not in IDX_TYPES:
        raise DatasetFormatError(
            f"{name}: unknown type code 0x{type_code:02X} in the magic number; "
            f"allowed: {_TYPE_NAMES}"
        )
    if ndim == 0:
        raise DatasetFormatError(f"{name}: the magic number announces 0 dimensions, need >= 1")
    header = 4 + 4 * ndim
    if size < header:
        raise DatasetFormatError(
            f"{name}: truncated header: {ndim} dimensions need {header} bytes, the file has {size}"
        )
    dims = tuple(int(d) for d in np.frombuffer(view, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[type_code]
    # Python ints: a product of four 32-bit dimensions must not overflow before the check.
    expected = math.prod(dims) * dtype.itemsize
    actual = size - header
    if actual != expected:
        what = "truncated payload" if actual < expected else "trailing data after the payload"
        raise DatasetFormatError(
            f"{name}: {what}: dimensions {dims} of {dtype.name} announce {expected} "
            f"payload bytes, the file has {actual}"
        )
    array = np.frombuffer(view, dtype=dtype, offset=header).reshape(dims)
    native = dtype.newbyteorder("=")
    if dtype.itemsize > 1 or not array.flags.writeable:
        array = array.astype(native, copy=True)
    return array


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads an IDX file (raw or ``.gz``) strictly into a numpy array.

    Args:
        path: The file; a name ending in ``.gz`` means gzip-compressed.

    Returns:
        A writable, native-byte-order array with the shape and type the file announces.

    Raises:
        FileNotFoundError: The file does not exist.
        DatasetFormatError: The file is not a complete, valid IDX file (bad gzip stream,
            magic number, type code, dimensions or payload size); the message names the
            file and the fault.
    """
    path = Path(path)
    if _is_gzip_name(path):
        _, content = read_idx_bytes(path)
        return decode_idx(content, str(path))
    with open(path, "rb") as f:
        # readinto a bytearray gives decode_idx a writable buffer: no copy for uint8 data.
        buffer = bytearray(os.fstat(f.fileno()).st_size)
        read = f.readinto(buffer)
    return decode_idx(memoryview(buffer)[:read], str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """Encodes an array as IDX bytes (the inverse of :func:`decode_idx`).

    Args:
        array: An array of one of the IDX types (uint8, int8, int16, int32, float32,
            float64) with 1 to 255 dimensions.

    Returns:
        The IDX bytes: magic number, big-endian dimensions, big-endian payload.

    Raises:
        TypeError: ``array`` is not a numpy array or its dtype has no IDX type code.
        ValueError: ``array`` has 0 or more than 255 dimensions, or a dimension
            above 2**32 - 1.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"array must be a numpy array, got {type(array).__name__}")
    codes = {dt.newbyteorder("="): code for code, dt in IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        allowed = ", ".join(dt.name for dt in IDX_TYPES.values())
        raise TypeError(f"array dtype must be one of {allowed}, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"array must have 1 to 255 dimensions, got {array.ndim}")
    if any(d > 0xFFFFFFFF for d in array.shape):
        raise ValueError(f"array dimensions must be below 2**32, got {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Writes an array as an IDX file, gzip-compressed when the name ends in ``.gz``.

    The file is written under a temporary name and renamed into place, so a failure
    (a full disk) leaves a file already at ``path`` as it was.

    Args:
        path: Where to write.
        array: See :func:`encode_idx`.

    Returns:
        The path written.

    Raises:
        TypeError: See :func:`encode_idx`.
        ValueError: See :func:`encode_idx`.
    """
    path = Path(path)
    data = encode_idx(array)
    if _is_gzip_name(path):
        # mtime=0: the same array always gives the same bytes (stable test checksums).
        data = gzip.compress(data, mtime=0)
    atomic_write_bytes(path, data)  # a failed write leaves an existing file as it was
    return path
