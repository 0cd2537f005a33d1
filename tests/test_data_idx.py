"""The strict IDX reader: round trips, each kind of damage, and random bytes."""

from __future__ import annotations

import gzip
import itertools
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fcnet.data import decode_idx, read_idx, write_idx
from fcnet.data.idx import IDX_TYPES, encode_idx
from fcnet.exceptions import DatasetFormatError

_counter = itertools.count()


def _images(n: int = 5) -> np.ndarray:
    return np.arange(n * 28 * 28, dtype=np.int64).reshape(n, 28, 28).astype(np.uint8)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array",
    [
        _images(),
        np.array([9, 0, 0, 3, 0], dtype=np.uint8),
        np.array([[-1, 2], [3, -128]], dtype=np.int8),
        np.array([-300, 1, 32000], dtype=np.int16),
        np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 7,
        np.array([1.5, -2.25, np.inf], dtype=np.float32),
        np.array([[1e300, -0.0]], dtype=np.float64),
    ],
    ids=["uint8-3d", "uint8-1d", "int8", "int16", "int32-3d", "float32", "float64"],
)
def test_round_trip_every_type(tmp_path, array, suffix):
    path = write_idx(tmp_path / f"data{suffix}", array)
    back = read_idx(path)
    assert back.dtype == array.dtype.newbyteorder("=")
    assert back.dtype.isnative
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable


def test_header_is_big_endian_and_exact():
    data = encode_idx(np.array([[1, 2, 3]], dtype=np.int16))
    # magic 00 00 0B 02, dims 1 and 3, then 3 big-endian int16s.
    assert data == bytes.fromhex("00000b020000000100000003000100020003")


def test_reads_multi_member_gzip(tmp_path):
    content = encode_idx(_images(3))
    path = tmp_path / "multi.gz"
    path.write_bytes(gzip.compress(content[:100]) + gzip.compress(content[100:]))
    np.testing.assert_array_equal(read_idx(path), _images(3))


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope-idx1-ubyte")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:3], r"truncated header: 3 bytes"),
        (lambda b: b"\x01" + b[1:], r"bad magic number 0x01000803: an IDX file starts with two"),
        (lambda b: b[:2] + b"\x07" + b[3:], r"unknown type code 0x07 .*allowed: 0x08 uint8"),
        (lambda b: b[:3] + b"\x00" + b[4:], r"announces 0 dimensions"),
        (lambda b: b[:4] + b"\x00\x00", r"truncated header: 3 dimensions need 16 bytes, .* has 6"),
        (lambda b: b[:-1], r"truncated payload: dimensions \(5, 28, 28\) of uint8 announce 3920"),
        (lambda b: b + b"\x00", r"trailing data after the payload: .* the file has 3921"),
        # Wrong count: the header says 6 images, the payload holds 5.
        (lambda b: b[:7] + b"\x06" + b[8:], r"announce 4704 payload bytes, the file has 3920"),
        (lambda b: gzip.compress(b), r"bad magic number 0x1f8b.*looks gzip-compressed"),
    ],
    ids=[
        "short",
        "magic",
        "type",
        "ndim0",
        "short-dims",
        "truncated",
        "trailing",
        "count",
        "gzip-unnamed",
    ],
)
def test_raw_damage_raises_format_error_naming_file(tmp_path, mutate, message):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(mutate(encode_idx(_images())))
    with pytest.raises(DatasetFormatError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda gz: gz[: len(gz) // 2], r"truncated gzip stream"),
        (lambda gz: gz[:-8] + bytes(8), r"corrupt gzip stream"),  # CRC and length zeroed
        (lambda gz: b"\x00\x00\x08\x03" + gz[4:], r"not gzip-compressed \(starts with 0000"),
        (lambda gz: b"", r"not gzip-compressed \(starts with nothing"),
    ],
    ids=["truncated", "crc", "not-gzip", "empty"],
)
def test_gzip_damage_raises_format_error_naming_file(tmp_path, mutate, message):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(mutate(gzip.compress(encode_idx(_images()), mtime=0)))
    with pytest.raises(DatasetFormatError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_decode_idx_rejects_non_bytes():
    with pytest.raises(TypeError, match="data must be bytes-like, got str"):
        decode_idx("0000")  # type: ignore[arg-type]


def test_huge_announced_dimensions_do_not_allocate():
    # 4 dimensions of 2**32 - 1 announce ~3e38 bytes: must be rejected by arithmetic alone.
    data = bytes([0, 0, 0x0E, 4]) + b"\xff" * 16 + b"\x00" * 8
    with pytest.raises(DatasetFormatError, match="truncated payload"):
        decode_idx(data, "huge")


def test_encode_idx_rejects_unsupported_arrays():
    with pytest.raises(TypeError, match="array dtype must be one of .* got int64"):
        encode_idx(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="1 to 255 dimensions, got 0"):
        encode_idx(np.array(3, dtype=np.uint8))
    with pytest.raises(TypeError, match="must be a numpy array"):
        encode_idx([1, 2])  # type: ignore[arg-type]


def _check_result_or_format_error(call):
    """The only allowed outcomes: a consistent array, or DatasetFormatError."""
    try:
        array = call()
    except DatasetFormatError:
        return None
    assert isinstance(array, np.ndarray)
    assert array.dtype.isnative
    assert array.dtype in [dt.newbyteorder("=") for dt in IDX_TYPES.values()]
    return array


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_never_crash_decode(data):
    array = _check_result_or_format_error(lambda: decode_idx(data, "random"))
    if array is not None:
        header = 4 + 4 * array.ndim
        assert len(data) == header + array.size * array.itemsize


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(sorted(IDX_TYPES)),
    st.lists(st.integers(0, 4), min_size=1, max_size=3),
    st.binary(max_size=40),
)
def test_valid_headers_with_random_payload(type_code, dims, payload):
    data = bytes([0, 0, type_code, len(dims)]) + np.asarray(dims, ">u4").tobytes() + payload
    array = _check_result_or_format_error(lambda: decode_idx(data, "random"))
    expected_size = math.prod(dims) * IDX_TYPES[type_code].itemsize
    assert (array is not None) == (len(payload) == expected_size)
    if array is not None:
        assert array.shape == tuple(dims)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_every_truncation_of_a_file_is_a_format_error(tmp_path, data):
    compressed = data.draw(st.booleans(), label="gz")
    content = encode_idx(_images(2))
    stored = gzip.compress(content, mtime=0) if compressed else content
    cut = data.draw(st.integers(0, len(stored) - 1), label="cut")
    path = tmp_path / f"f{next(_counter)}{'.gz' if compressed else ''}"
    path.write_bytes(stored[:cut])
    with pytest.raises(DatasetFormatError, match=str(path.name)):
        read_idx(path)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=200), compressed=st.booleans(), gz_magic=st.booleans())
def test_random_files_never_crash_read(tmp_path, data, compressed, gz_magic):
    if compressed and gz_magic:
        data = b"\x1f\x8b\x08" + data  # get past the magic check into zlib itself
    path = tmp_path / f"r{next(_counter)}{'.gz' if compressed else ''}"
    path.write_bytes(data)
    _check_result_or_format_error(lambda: read_idx(path))


def test_a_failed_write_leaves_the_existing_file(tmp_path, monkeypatch):
    path = write_idx(tmp_path / "keep.idx", np.arange(6, dtype=np.uint8).reshape(2, 3))
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_idx(path, np.zeros((10, 28, 28), dtype=np.uint8))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.idx"]
