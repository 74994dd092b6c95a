"""The IDX file format of MNIST and Fashion-MNIST, read and written with NumPy.

An IDX file is a tiny header followed by a C-order array, all big-endian::

    bytes 0-1   0x00 0x00          always zero
    byte  2     dtype code         0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     ndim               number of dimensions
    then        ndim × uint32      the size of each dimension
    then        the data           prod(dims) items of the dtype

MNIST's images are ``(N, 28, 28)`` uint8 (magic ``0x00000803``) and its labels ``(N,)`` uint8
(magic ``0x00000801``). Files may be gzip-compressed (``.gz``); we detect that from the content.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError

# IDX dtype code → big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when the content is gzip (whatever the suffix)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise GenlabError(f"IDX file {path} does not exist; check the path") from None
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise GenlabError(
            f"{path} is a damaged gzip file ({exc}); delete it and place or download it again"
        ) from None


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse the (uncompressed) bytes of an IDX file into an array with native byte order."""
    fix = "delete it and place or download it again"
    if len(data) < 4:
        raise GenlabError(f"{source} is not an IDX file (only {len(data)} bytes); {fix}")
    zero, code, ndim = data[:2], data[2], data[3]
    if zero != b"\x00\x00" or code not in IDX_DTYPES or ndim == 0:
        raise GenlabError(
            f"{source} is not an IDX file (magic number 0x{data[:4].hex()}); {fix}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise GenlabError(f"{source} is truncated inside its IDX header; {fix}")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        raise GenlabError(
            f"{source} holds {actual} data bytes but its header {dims} {dtype.name} "
            f"needs {expected} (truncated or damaged); {fix}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)  # native order, writable


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a NumPy array of shape ``dims``."""
    path = Path(path)
    return parse_idx(_read_bytes(path), source=str(path))


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as IDX bytes (uncompressed)."""
    array = np.asarray(array)
    codes = {dt.newbyteorder("=").str.lstrip("<>|="): c for c, dt in IDX_DTYPES.items()}
    kind = array.dtype.newbyteorder("=").str.lstrip("<>|=")
    if kind not in codes:
        names = ", ".join(dt.name for dt in IDX_DTYPES.values())
        raise GenlabError(f"IDX cannot store dtype {array.dtype}; use one of: {names}")
    if array.ndim == 0 or array.ndim > 255:
        raise GenlabError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    code = codes[kind]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file; gzip-compressed when ``path`` ends in ``.gz``."""
    path = Path(path)
    data = idx_bytes(array)
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path
