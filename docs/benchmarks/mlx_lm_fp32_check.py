"""Does computing mlx-lm's GPTQ / AWQ / dynamic_quant in fp32 (mlx_lm_fp32.py) change what they produce?

    python docs/benchmarks/mlx_lm_fp32_check.py [--out docs/benchmarks/mlx_lm_fp32.md]

On the committed trained tiny llama (tests/fixtures/trained-tiny, bf16; small enough for mlx-lm's bf16 CPU
path), each method runs twice with the same calibration tokens: as mlx-lm runs it (its passes in bf16) and
as real_model_quality.py runs it (fp32, stored bf16). Both folders are scored against the same held-out
reference (temper's evaluation set): real bpw, KL mean ± SE, top-1, and how many packed weight words and
scales the two share. GPTQ runs a third time on the bf16 model with its Hessian products summed in fp32,
to tell the rounding of the Hessian apart from the rest.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

METHODS = [("gptq", ["--bits", "4", "--group-size", "64"]),
           ("awq", ["--bits", "4", "--group-size", "64", "--num-samples", "16", "--sequence-length", "128"]),
           ("dynamic_quant", ["--target-bpw", "4.8"])]


def hessian_products(module, dtype) -> None:
    """GPTQ's Catcher with each batch's x^T x computed from inputs rounded to DTYPE and summed as DTYPE
    (bf16: what its bf16 run sums, from fp32 activations; fp32: full precision from bf16 activations)."""
    import mlx.core as mx

    class Catcher(module.Catcher):
        def __call__(self, x, *a, **k):
            xf = x.flatten(0, -2).astype(dtype).astype(mx.float32)
            self.H = self.H + (xf.T @ xf).astype(dtype)
            return self.module(x, *a, **k)
    module.Catcher = Catcher


def bf16_run(method: str, src: Path, out: Path, args: list[str], tokens, fp32_hessian: bool = False) -> None:
    import mlx.core as mx
    import mlx_lm_fp32

    module = importlib.import_module(f"mlx_lm.quant.{method}")
    mlx_lm_fp32.use_calibration(module, tokens)
    saved = getattr(module, "Catcher", None)
    if fp32_hessian:
        hessian_products(module, mx.float32)
    sys.argv = [method, "--model", str(src), "--mlx-path", str(out), *args]
    try:
        module.main()
    finally:
        if saved is not None:
            module.Catcher = saved


def real_model(folder: Path, work: Path, rmq_work: Path) -> list[str]:
    """GPTQ 4-bit g64 on the real model in fp32 twice: as real_model_quality.py runs it, and with each batch's
    Hessian product rounded to bf16 as a bf16 run rounds it. Same calibration and evaluation as the table."""
    import mlx.core as mx
    import mlx_lm.quant.gptq as gptq
    import mlx_lm_fp32
    import numpy as np
    from mlx_lm.utils import load_tokenizer
    from temper.core.quant.calibration import calibration_set, evaluation_set
    from temper.core.quant.evaluate import compare_folder, reference

    tok = load_tokenizer(folder)
    calib = calibration_set(tok, samples=32, seq_len=256)
    ev = evaluation_set(tok, samples=16, seq_len=256, calibration=calib)
    ref = reference(folder, [list(map(int, r)) for r in ev.chunks])
    rows, saved = [], gptq.Catcher
    work.mkdir(parents=True, exist_ok=True)
    for label in ("computed in fp32, stored bf16", "the same, Hessian products rounded to bf16"):
        out = work / label.split(",")[0].replace(" ", "-")
        print(f"[real model] gptq: {label}", flush=True)
        if "rounded" in label:
            hessian_products(gptq, mx.bfloat16)
        t = time.perf_counter()
        try:
            mlx_lm_fp32.run("gptq", folder, out, ["--bits", "4", "--group-size", "64"],
                            calib.chunks.astype(np.int32), rmq_work)
        finally:
            gptq.Catcher = saved
        q = compare_folder(ref, out)
        rows.append(f"| gptq --bits 4 --group-size 64 | {label} | {q.real_bpw:.4f} | {q.kl_mean:.5f} ± {q.kl_se:.5f} | "
                    f"{100 * q.top1:.1f}% | {time.perf_counter() - t:.1f} |")
        print("  " + rows[-1], flush=True)
    return rows


def shared(a: Path, b: Path) -> tuple[float, float]:
    import mlx.core as mx
    import numpy as np

    x, y = mx.load(str(a / "model.safetensors")), mx.load(str(b / "model.safetensors"))
    words = [mx.mean(x[k] == y[k]).item() for k in x if x[k].dtype == mx.uint32]
    scales = [mx.mean(x[k] == y[k]).item() for k in x if k.endswith(".scales")]
    return float(np.mean(words)), float(np.mean(scales))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks/mlx_lm_fp32.md")
    ap.add_argument("--work", type=Path, default=Path("/tmp/mlx_lm_fp32_check"))
    ap.add_argument("--real-model", type=Path, help="also GPTQ on this bf16 folder (SmolLM2-135M: the table's model)")
    ap.add_argument("--skip-tiny", action="store_true", help="only the --real-model part (the tiny table is kept)")
    args = ap.parse_args()
    import mlx_lm_fp32
    import numpy as np
    import quality_table
    from mlx_lm.utils import load_tokenizer
    from temper.core.quant.calibration import calibration_set, evaluation_set
    from temper.core.quant.evaluate import compare_folder, reference

    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    real = real_model(args.real_model, work / "real", work) if args.real_model else []
    old = args.out.read_text() if args.out.is_file() else ""
    if args.skip_tiny:
        tiny = old.split(quality_table.NOTES_MARK)[0].split("## On the real model")[0].rstrip()
        return finish(args.out, tiny, real, quality_table.notes_of(args.out))
    src = work / "trained-tiny"
    shutil.copytree(ROOT / "tests/fixtures/trained-tiny", src)
    os.chdir(work)
    tok = load_tokenizer(src)
    calib = calibration_set(tok, samples=16, seq_len=128)
    tokens = calib.chunks.astype(np.int32)
    ev = evaluation_set(tok, samples=8, seq_len=128, calibration=calib)
    ref = reference(src, [list(map(int, r)) for r in ev.chunks])
    rows = []
    runs = [(m, a, path) for m, a in METHODS for path in ("bf16", "fp32")] + [("gptq", METHODS[0][1], "h32")]
    for i, (method, margs, path) in enumerate(runs, 1):
        out = work / f"{method}-{path}"
        print(f"[{i}/{len(runs)}] {method} {path}", flush=True)
        t = time.perf_counter()
        if path == "fp32":
            mlx_lm_fp32.run(method, src, out, margs, tokens, work)
        else:
            bf16_run(method, src, out, margs, tokens, fp32_hessian=path == "h32")
        seconds = time.perf_counter() - t
        q = compare_folder(ref, out)
        words, scales = shared(work / f"{method}-bf16", out)
        label = {"bf16": "mlx-lm as it runs (bf16)", "fp32": "computed in fp32, stored bf16",
                 "h32": "bf16, Hessian products summed in fp32"}[path]
        rows.append(f"| {method} {' '.join(margs)} | {label} | {q.real_bpw:.4f} | {q.kl_mean:.5f} ± {q.kl_se:.5f} | "
                    f"{100 * q.top1:.1f}% | {100 * words:.1f}% | {100 * scales:.1f}% | {seconds:.1f} |")
        print("  " + rows[-1], flush=True)
    tiny = f"""# mlx-lm's calibrated quantizers in fp32 against their bf16 runs (tiny model)

Made by `python docs/benchmarks/mlx_lm_fp32_check.py` (MLX {importlib.import_module('mlx.core').__version__},
mlx-lm {importlib.import_module('mlx_lm').__version__}, load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}).
The committed trained tiny llama (bf16); {calib.describe()}; held-out {ev.describe()}.
"shared" = share of packed weight words / scales equal to the bf16 run's.

| method | run | real bpw | KL mean ± SE | top-1 | words shared | scales shared | s |
|---|---|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}"""
    return finish(args.out, tiny, real, quality_table.notes_of(args.out))


def finish(out: Path, tiny: str, real: list[str], notes: str) -> int:
    import quality_table

    parts = [tiny]
    if real:
        parts.append(f"""## On the real model

`--real-model`: SmolLM2-135M-Instruct bf16, the calibration (32 x 256) and held-out evaluation (16 x 256) of
real_model_quality_cpu.md (load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())} at the end).

| method | run | real bpw | KL mean ± SE | top-1 | s |
|---|---|---:|---:|---:|---:|
{chr(10).join(real)}""")
    text = "\n\n".join(parts) + f"\n\n{quality_table.NOTES_MARK}\n{notes.strip()}\n"
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, out)
    print(text)
    return 0


if __name__ == "__main__":
    from temper.core.accel.preload import ensure_fast_blas

    ensure_fast_blas(quiet=True)
    sys.exit(main())
