"""One thread for NumPy's own bundled OpenBLAS, where temper's NumPy forms run on a thread pool.

NumPy wheels carry their own OpenBLAS (scipy-openblas, symbols renamed), separate from the one temper preloads
for MLX (preload.py). Its products start their own worker threads, as many as OPENBLAS_NUM_THREADS says, so a
pool of two threads each calling `np.matmul` ran four spinning threads on two cores: GPTQ's H-weighted clip
search (core/quant/clip_search_np.py) took 196-374 ms on three SmolLM2 weights, against 116-164 ms with one
BLAS thread per pool thread. `single_threaded()` sets that library to one thread (the pool is the parallelism);
the preloaded OpenBLAS, which MLX and syrk.py / gemm.py use, keeps its threads.
"""

from __future__ import annotations

import ctypes
import os
from functools import lru_cache

SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_")


def numpy_openblas() -> str | None:
    """The path of NumPy's bundled OpenBLAS as mapped in this process (numpy.libs/libscipy_openblas*.so; NumPy
    1.26's libopenblas64_p*.so), or None (a NumPy on Accelerate or a system BLAS). lapack.py calls it too."""
    import numpy  # noqa: F401  (maps its BLAS)

    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line and "/" in line}
    except OSError:
        return None
    ours = sorted(p for p in paths if "numpy" in p and "openblas" in os.path.basename(p))
    return ours[0] if ours else None


@lru_cache(maxsize=1)
def numpy_openblas_library() -> ctypes.CDLL | None:
    """NumPy's bundled OpenBLAS opened through ctypes (its names as the library has them), or None."""
    path = numpy_openblas()
    if path is None:
        return None
    try:
        return ctypes.CDLL(path)
    except OSError:
        return None


@lru_cache(maxsize=1)
def single_threaded() -> bool:
    """Set NumPy's bundled OpenBLAS to one thread (once per process); whether it could be."""
    lib = numpy_openblas_library()
    if lib is None:
        return False
    for name in SETTERS:
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.argtypes = [ctypes.c_int]
            fn.restype = None
            fn(1)
            return True
    return False
