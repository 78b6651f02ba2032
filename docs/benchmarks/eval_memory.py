"""Memory of the held-out evaluation (`temper eval`, the quantize job's evaluate step) on one base and one
quantized folder: the job's own `evaluate()` with 16 chunks of 256 tokens, RSS (now and high-water, GiB) and MLX
memory sampled every 5 s beside the job's progress, then the quality row and the totals.

    .venv/bin/python docs/benchmarks/eval_memory.py BASE QUANT > log

Issue 11's 262k-vocabulary case: BASE = the gemma3-270m-like random model that sensitivity_scale.py builds
(`--work /tmp/vocab --only vocab` leaves it in /tmp/vocab/vocab and its quantized copy in
/tmp/vocab/vocab-quantize).
"""

from __future__ import annotations

import resource
import sys
import threading
import time
from pathlib import Path


def rss_gib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 2**20       # kB in /proc are KiB
    return float("nan")


def main() -> int:
    from temper.core.accel.preload import ensure_fast_blas

    ensure_fast_blas()
    import mlx.core as mx
    from temper.core.quant import evaluate as ev

    base, quant = Path(sys.argv[1]), Path(sys.argv[2])
    chunks = [[(7 * i + 13 * j) % 1000 + 3 for j in range(256)] for i in range(16)]
    t0, state = time.time(), {"tag": "start"}

    def sample() -> None:
        while True:
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20     # KiB on Linux
            print(f"{time.time() - t0:6.1f}s {state['tag']}: RSS {rss_gib():.2f} GiB, high-water {hwm:.2f} GiB, "
                  f"MLX active {mx.get_active_memory() / 2**30:.2f} GiB, peak {mx.get_peak_memory() / 2**30:.2f} GiB",
                  flush=True)
            time.sleep(5)

    threading.Thread(target=sample, daemon=True).start()

    class Ctx:
        job_id = 0

        def check(self) -> None:
            pass

        def emit(self, event) -> None:
            state["tag"] = f"{event.done}/{event.total} {event.message}"

    for row in ev.evaluate(Ctx(), base, [quant], chunks):
        print(f"{row.name}: KL {row.kl_mean:.7f}, top-1 {row.top1:.4f}, PPL {row.ppl:.3f}, {row.seconds:.1f} s, "
              f"reference {row.reference}")
    print(f"done in {time.time() - t0:.1f} s, RSS high-water "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB, CPU {time.process_time():.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
