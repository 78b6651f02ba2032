"""Peak resident memory of this process in bytes. getrusage's ru_maxrss is in kilobytes on Linux and in
bytes on macOS."""

from __future__ import annotations

import sys


def peak_rss_bytes() -> int:
    import resource

    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak if sys.platform == "darwin" else peak * 1024
