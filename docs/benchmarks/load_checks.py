"""What the load-time checks of issue 16 cost, against the load they guard, measured in the same run.

    .venv/bin/python docs/benchmarks/load_checks.py [--runs 5] [--out docs/benchmarks/load_checks.md]

A SmolLM2-135M-shaped llama (hidden 576, 30 layers, vocabulary 49152, random bf16 weights, 270 MB) is written
to a temporary folder. Rows (median of --runs, page cache warm after a first untimed pass):
- baseline: mlx-lm's `load_model` (lazy=False): every weight read once, the model built.
- folder check: `check_model_folder` (config, remote code, headers vs bytes, embedding vs config).
- NaN/Inf, loaded model: `finite.check_model` on the loaded model (what chat, bench, eval and the in-memory
  sensitivity pass add after their load).
- NaN/Inf, from files: `finite.check_files` (what quantize adds before its passes; bounded memory).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

SHAPE = {"model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30, "intermediate_size": 1536,
         "num_attention_heads": 9, "num_key_value_heads": 3, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
         "max_position_embeddings": 2048, "tie_word_embeddings": True, "vocab_size": 49152}


def build(out: Path) -> int:
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.utils import _get_classes, save_config

    out.mkdir(parents=True)
    model_cls, args_cls = _get_classes(SHAPE)
    model = model_cls(args_cls.from_dict(SHAPE))
    weights = {k: v.astype(mx.bfloat16) for k, v in tree_flatten(model.parameters())}
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})
    save_config({**SHAPE, "torch_dtype": "bfloat16"}, config_path=out / "config.json")
    return (out / "model.safetensors").stat().st_size


def timed(fn, runs: int) -> tuple[float, float, float]:
    fn()  # warm: page cache, MLX kernels
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import mlx.core as mx
    from mlx_lm.utils import load_model
    from temper.core.engine.finite import check_files, check_model
    from temper.core.library.check import check_model_folder

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "smol-shaped"
        size = build(folder)
        loaded = {}

        def baseline() -> None:
            model, _ = load_model(folder, lazy=False)
            loaded["model"] = model

        rows = [("baseline: mlx-lm load_model (every weight read once)", timed(baseline, args.runs))]
        rows.append(("folder check (headers, config, no weights)", timed(lambda: check_model_folder(folder),
                                                                           args.runs)))
        rows.append(("NaN/Inf check on the loaded model", timed(lambda: check_model(loaded["model"], folder),
                                                              args.runs)))
        rows.append(("NaN/Inf check from the files (bounded memory)", timed(lambda: check_files(folder),
                                                                          args.runs)))
    base = rows[0][1][0]
    load = os.getloadavg()[0]
    lines = [
        "# Load-time checks: cost against the load they guard", "",
        f"Command: `.venv/bin/python docs/benchmarks/load_checks.py --runs {args.runs}`  ",
        f"Machine: {platform.machine()}, {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, mlx {mx.__version__} ({mx.default_device()}). Model: SmolLM2-135M shape, "
        f"random bf16, {size / 1e6:.0f} MB, page cache warm. Load average at the end: {load:.1f} on "
        f"{os.cpu_count()} CPUs.", "",
        "| what | median s | min s | max s | × baseline |", "|---|---|---|---|---|",
    ]
    for name, (med, lo, hi) in rows:
        lines.append(f"| {name} | {med:.4f} | {lo:.4f} | {hi:.4f} | {med / base:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
