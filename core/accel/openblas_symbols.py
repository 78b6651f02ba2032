"""A function of the OpenBLAS in the process's global scope (the one temper preloads for MLX on Linux CPU builds,
preload.py), with the integer type of its build (OpenBLAS's 64-bit-integer builds say USE64BITINT in their
config). syrk.py, gemm.py and lapack.py call it through ctypes; None where no OpenBLAS is in that scope (macOS,
MLX's reference BLAS, NumPy's bundled copy: its names are renamed and it is not global)."""

from __future__ import annotations

import ctypes
from typing import Any


def global_function(name: str) -> tuple[Any, Any] | None:
    """(the function, ctypes.c_int or c_int64), or None."""
    try:
        lib = ctypes.CDLL(None)
        fn, config = getattr(lib, name), lib.openblas_get_config
    except (AttributeError, OSError):
        return None
    config.restype = ctypes.c_char_p
    wide = b"USE64BITINT" in (config() or b"")
    return fn, ctypes.c_int64 if wide else ctypes.c_int


_CODES = {"e": ctypes.c_int, "f": ctypes.c_float, "p": ctypes.POINTER(ctypes.c_float)}


def cblas_function(name: str, signature: str) -> Any | None:
    """A global single-precision CBLAS function typed for ctypes, or None: `signature` spells its arguments, one
    letter each (e: an enum, i: an integer of the build's width, f: float, p: float pointer); it returns nothing."""
    found = global_function(name)
    if found is None:
        return None
    fn, integer = found
    fn.restype = None
    fn.argtypes = [integer if code == "i" else _CODES[code] for code in signature]
    return fn
