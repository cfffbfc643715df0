"""Allocate a ``bytes`` result once and fill it in place.

Returning a large object as ``bytes`` usually costs two allocations (parts,
then a join) and a copy; on this hardware touching a fresh GiB costs more CPU
than receiving it. :func:`fresh_bytes` asks CPython for an *uninitialised*
``bytes`` object (``PyBytes_FromStringAndSize(NULL, n)``, the documented way
C code builds one) and hands out a writable view of its storage. The caller
fills it, releases the view, and only then lets the ``bytes`` escape: nothing
else can see the object while it is being written.
"""

from __future__ import annotations

import ctypes
import mmap
import sys
from typing import Any

_new_bytes = ctypes.pythonapi.PyBytes_FromStringAndSize
_new_bytes.restype = ctypes.py_object
_new_bytes.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
_bytes_address = ctypes.pythonapi.PyBytes_AsString
_bytes_address.restype = ctypes.c_void_p
_bytes_address.argtypes = (ctypes.py_object,)

#: Below this size an ordinary ``bytearray`` + ``bytes()`` is cheap enough.
MIN_SIZE = 2**16
#: Linux 5.14+: fault in a whole range in one call instead of one trap per page.
_MADV_POPULATE_WRITE = 23
_PAGE = mmap.PAGESIZE


def _libc_madvise() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    madvise.restype = ctypes.c_int
    return madvise


_madvise = _libc_madvise() if sys.platform == "linux" else None


def prefault(view: memoryview) -> None:
    """Populate the pages under a writable view in one call (best effort).

    Called by each worker on its own slice, so the cost is spread over threads.
    """
    if _madvise is None or len(view) < _PAGE:
        return
    address = ctypes.addressof(ctypes.c_char.from_buffer(view))
    n = len(view)
    start = (address + _PAGE - 1) & ~(_PAGE - 1)
    length = (address + n - start) & ~(_PAGE - 1)
    if length > 0:
        _madvise(start, length, _MADV_POPULATE_WRITE)  # EINVAL on old kernels: harmless


def fresh_bytes(n: int) -> tuple[bytes, memoryview]:
    """A new ``bytes`` of length ``n`` and a writable view of its storage.

    Fill the view completely, call ``view.release()``, then use the bytes.
    """
    if n < MIN_SIZE:
        raise ValueError(f"fresh_bytes is for large results (got {n} bytes)")
    result = _new_bytes(None, n)
    address = _bytes_address(result)
    storage = (ctypes.c_char * n).from_address(address)
    return result, memoryview(storage).cast("B")
