"""mlx-lm's calibrated quantizers (GPTQ, AWQ, dynamic_quant) computed in fp32 and stored as bf16.

Why: mlx-lm runs their forward (and, for dynamic_quant, backward) passes in the model's dtype. On MLX's
Linux CPU backend bf16 matmuls have no BLAS path (3-8 GFLOP/s: hours for a 135M model), while fp32 ones go
through the preloaded OpenBLAS (temper.core.accel.preload). So real_model_quality.py runs them here:

- GPTQ and AWQ: mlx-lm's own `main()` on an fp32 copy of the bf16 folder (every bf16 value is exact in
  fp32), then every floating tensor of the result is cast back to bf16 (`store_as`). That is what a bf16
  run stores: GPTQ quantizes in fp32 anyway (it casts W to fp32; its Hessian sums fp32) and casts the layer
  to the weight's dtype at the end (`layer.set_dtype(orig_type)`); AWQ's scale and clip searches compare
  fp32 MSEs. What differs is only the rounding of the activations the Hessian / the searches see.
- dynamic_quant: its sensitivities (gradients of a KL) are computed in fp32 by mlx-lm's own
  `estimate_sensitivities`, then mlx-lm's `main()` runs on the bf16 folder with `--sensitivities FILE`:
  the threshold search and the quantization are exactly its bf16 path (run on fp32 weights they would
  count fp32 scales and norms in its bits-per-weight target).

Calibration: `use_calibration` replaces the module's text download by the given token array.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

FLOAT = ("bfloat16", "float16", "float32")


def _cast_folder(src: Path, dst: Path, dtype: str) -> None:
    """Copy SRC to DST with every floating tensor cast to DTYPE (quantized uint32 weights untouched) and
    config.json's torch_dtype set to it. Written beside DST and renamed into place (atomic)."""
    import mlx.core as mx

    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    target = getattr(mx, dtype)
    total = 0
    for f in sorted(src.iterdir()):
        if f.suffix == ".safetensors":
            tensors = mx.load(str(f))
            cast = {k: v.astype(target) if str(v.dtype).split(".")[-1] in FLOAT else v for k, v in tensors.items()}
            mx.save_safetensors(str(tmp / f.name), cast, metadata={"format": "mlx"})
            total += sum(v.nbytes for v in cast.values())
        elif f.name == "config.json":
            config = json.loads(f.read_text())
            config["torch_dtype"] = dtype
            (tmp / f.name).write_text(json.dumps(config, indent=4))
        elif f.is_file() and not f.name.endswith(".safetensors.index.json"):
            shutil.copy2(f, tmp / f.name)
    index = src / "model.safetensors.index.json"
    if index.is_file():
        data = json.loads(index.read_text())
        data.setdefault("metadata", {})["total_size"] = total
        (tmp / index.name).write_text(json.dumps(data, indent=4))
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)


def fp32_copy(src: Path, dst: Path) -> Path:
    """An fp32 copy of SRC (made once: an existing DST is reused)."""
    if not (dst / "config.json").is_file():
        _cast_folder(src, dst, "float32")
    return dst


def store_as(folder: Path, dtype: str = "bfloat16") -> None:
    """Cast FOLDER's floating tensors (scales, biases, norms, unquantized weights) to DTYPE in place."""
    _cast_folder(folder, folder, dtype)


def use_calibration(module, tokens) -> None:
    """mlx-lm's `load_data(tokenizer, num_samples, sequence_length)` in MODULE returns TOKENS' first
    num_samples rows (all for -1) instead of downloading its calibration text."""
    import mlx.core as mx

    module.load_data = lambda tokenizer, num_samples, sequence_length: mx.array(
        tokens if num_samples is None or num_samples < 0 else tokens[:num_samples])


def sensitivities_fp32(module, src32: Path, args: list[str], out: Path) -> Path:
    """dynamic_quant's sensitivities on the fp32 copy, as its `main()` computes them (same seed, data,
    bits, accumulation dtype), saved as its JSON. Reused when OUT exists (they depend only on the bits)."""
    if out.is_file():
        print(f"[sensitivities] reusing {out.name}", file=sys.stderr, flush=True)
        return out
    import mlx.core as mx
    from mlx_lm.utils import load

    ap = argparse.ArgumentParser()
    for name, default in (("--low-bits", 4), ("--low-group-size", 64), ("--high-bits", 5),
                          ("--high-group-size", 64), ("--seed", 123)):
        ap.add_argument(name, type=int, default=default)
    a, _ = ap.parse_known_args(args)
    model, tokenizer = load(str(src32))
    mx.random.seed(a.seed)
    data = module.load_data(tokenizer, num_samples=-1, sequence_length=512)
    sens = module.estimate_sensitivities(model, data, a.low_bits, a.low_group_size, a.high_bits,
                                         a.high_group_size, gradient_accum_dtype=mx.float32)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(sens))
    os.replace(tmp, out)
    return out


def sensitivity_file(work: Path, args: list[str]) -> Path:
    """Where dynamic_quant's sensitivities for these bits are kept (one file per low/high bits and groups)."""
    keys = [a for a in args if a.startswith("--") and ("bits" in a or "group" in a)]
    tag = "-".join(f"{k.strip('-')}{args[args.index(k) + 1]}" for k in sorted(keys)) or "defaults"
    return work / f"dynamic_quant_sensitivities_{tag}.json"


def run(method: str, src: Path, out: Path, args: list[str], tokens, work: Path, fp32: bool = True) -> None:
    """mlx-lm's `mlx_lm.quant.METHOD` on SRC (bf16) into OUT, its forward passes in fp32 (FP32) or, as mlx-lm
    runs it, in the model's dtype."""
    import importlib

    module = importlib.import_module(f"mlx_lm.quant.{method}")
    use_calibration(module, tokens)
    if not fp32:
        os.chdir(out.parent)
        sys.argv = [method, "--model", str(src), "--mlx-path", str(out), *args]
        module.main()
        return
    src32 = fp32_copy(src, work / (src.name + "-fp32"))
    os.chdir(out.parent)   # dynamic_quant writes its sensitivity file into the working folder
    if method == "dynamic_quant":
        sens = sensitivities_fp32(module, src32, args, sensitivity_file(work, args))
        sys.argv = [method, "--model", str(src), "--mlx-path", str(out), "--sensitivities", str(sens), *args]
        module.main()
        return
    sys.argv = [method, "--model", str(src32), "--mlx-path", str(out), *args]
    module.main()
    store_as(out, "bfloat16")
