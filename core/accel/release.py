"""Give memory back between the phases of a long job.

After the write phase of a large model the process keeps memory nothing uses any more: MLX's buffer cache,
Python objects waiting for the cycle collector, and glibc heap pages freed by NumPy (glibc raises its mmap
threshold after large frees, so later arrays of up to 32 MB come from the heap and their pages stay mapped
once freed). On the 262k-vocabulary model of docs/benchmarks/sensitivity_scale.md the evaluate phase ran
~0.9 GB above the same evaluation in a fresh process until these were released.
"""

from __future__ import annotations

import ctypes
import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def release_memory() -> int:
    """Collect garbage, empty MLX's buffer cache and return freed heap pages to the OS (glibc only).
    Returns the process's RSS drop in bytes (0 where RSS cannot be read)."""
    import mlx.core as mx

    before = rss_bytes()
    gc.collect()
    mx.clear_cache()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):      # not glibc (musl): nothing to trim
            pass
    return max(0, before - rss_bytes())


def rss_bytes() -> int:
    """This process's resident set size in bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@contextmanager
def bounded_cache(limit: int | None) -> Iterator[None]:
    """Within the block, MLX keeps at most `limit` bytes of freed buffers for reuse (its buffer cache); the
    caller's limit is put back after. MLX reuses a cached buffer only for a request of nearly its size (within
    two pages for large ones), so a phase whose arrays shrink step by step (a blocked factor's trailing
    matrix) never reuses them, and by default the cache keeps them up to the memory limit: on CUDA, 80% of
    the card beside the live arrays. `None`: no bound (MLX's own limit stays)."""
    import mlx.core as mx

    if limit is None:
        yield
        return
    previous = mx.set_cache_limit(limit)
    try:
        yield
    finally:
        mx.set_cache_limit(previous)
