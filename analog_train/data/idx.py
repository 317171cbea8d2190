"""Parser for the idx format of MNIST-style files (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS").

An idx file is a 4-byte magic number ``0, 0, dtype code, ndim``, then ``ndim`` big-endian uint32
dimension sizes, then the values in row-major order, big-endian.
"""

from __future__ import annotations

import numpy as np

# idx type code -> numpy dtype (big-endian where it matters)
_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_idx(buf: bytes) -> np.ndarray:
    """Decode idx bytes into a read-only array; ValueError says what is wrong with a malformed buffer."""
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0:
        raise ValueError("not an idx file: the magic number must start with two zero bytes")
    code, ndim = buf[2], buf[3]
    if code not in _DTYPES:
        raise ValueError(f"unknown idx type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise ValueError(f"idx header declares {ndim} dimensions but the file has only {len(buf)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(buf, dtype=">u4", count=ndim, offset=4))
    dtype = _DTYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(buf) != expected:
        raise ValueError(f"idx shape {shape} needs {expected} bytes, the file has {len(buf)}")
    return np.frombuffer(buf, dtype=dtype, offset=header).reshape(shape)
