"""fp32 compute on the CPU backend gives the same logits as the native bf16 / quantized kernels."""

from __future__ import annotations

from pathlib import Path

import pytest
from temper.core.accel.compute import maybe_upcast, plan, prefer_fp32
from temper.core.accel.variants import derive_model
from temper.core.engine.loader import load
from temper.core.errors import QuantError, TemperError
from temper.core.quant.candidates import Candidate
from temper.core.quant.fakequant import fake_quantize, fake_quantized

TOKENS = [[1, 17, 42, 99, 250, 3, 7, 311, 64, 5, 120, 480]]


@pytest.fixture(scope="module")
def variants(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory, engine) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("variants")
    return engine.run(lambda ctx: {
        "bf16": derive_model(tiny_llama, root / "bf16", dtype="bfloat16"),
        "q4": derive_model(tiny_llama, root / "q4", bits=4, group_size=64),
        "q4bf16": derive_model(tiny_llama, root / "q4bf16", dtype="bfloat16", bits=4, group_size=64),
    }, timeout=120)


def _logits(engine, path: Path, compute: str):
    def run(ctx):
        import mlx.core as mx
        import numpy as np

        lm = load(path, compute=compute)
        out = lm.model(mx.array(TOKENS)).astype(mx.float32)
        dtypes = {str(v.dtype) for _, v in __import__("mlx.utils").utils.tree_flatten(lm.model.parameters())}
        return np.array(out), lm.extra["compute"], dtypes
    return engine.run(run, timeout=120)


def _kl(p_logits, q_logits) -> float:
    import numpy as np

    def log_softmax(x):
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))
    lp, lq = log_softmax(p_logits.astype(np.float64)), log_softmax(q_logits.astype(np.float64))
    return float((np.exp(lp) * (lp - lq)).sum(-1).mean())


def test_bf16_native_and_fp32_agree(engine, variants) -> None:
    import numpy as np

    native, native_plan, native_dtypes = _logits(engine, variants["bf16"], "native")
    fp32, fp32_plan, fp32_dtypes = _logits(engine, variants["bf16"], "fp32")
    assert native_plan.mode == "native" and "mlx.core.bfloat16" in native_dtypes
    assert fp32_plan.mode == "fp32" and fp32_dtypes == {"mlx.core.float32"}
    # bf16 activations round to 8 bits of mantissa: agreement to bf16 precision, same predictions
    scale = np.abs(fp32).max()
    assert np.abs(native - fp32).max() <= 0.02 * scale  # measured 0.007; fp32 vs 4-bit differs by 0.2
    assert _kl(fp32, native) < 1e-4
    assert (native.argmax(-1) == fp32.argmax(-1)).mean() >= 0.9


@pytest.mark.parametrize("variant", ["q4", "q4bf16"])
def test_quantized_native_and_dequantized_agree(engine, variants, variant) -> None:
    import numpy as np

    native, native_plan, _ = _logits(engine, variants[variant], "native")
    fp32, fp32_plan, fp32_dtypes = _logits(engine, variants[variant], "fp32")
    assert native_plan.quantized and native_plan.mode == "native"
    assert fp32_plan.mode == "fp32" and fp32_dtypes == {"mlx.core.float32"}  # no uint32 packed weights left
    scale = np.abs(fp32).max()
    tolerance = 1e-5 if variant == "q4" else 0.05  # fp32 scales: same arithmetic; bf16: bf16 activations
    assert np.abs(native - fp32).max() <= tolerance * scale
    assert _kl(fp32, native) < 1e-3  # fp32 vs 4-bit of the same model: 7e-3


@pytest.mark.parametrize("variant", ["q4", "q4bf16"])
def test_mixed_keeps_packed_weights_and_computes_what_native_does(engine, variants, variant) -> None:
    """"mixed": packed weights stay (decode memory as stored), scales go to fp32, prefill rows (>= 8 tokens)
    take the dequantize + BLAS route, single tokens the quantized kernel; both give native's logits."""
    import numpy as np

    def run(ctx):
        import mlx.core as mx
        from mlx.utils import tree_flatten
        from temper.core.accel import prefill

        lm = load(variants[variant], compute="mixed")
        dtypes = {str(v.dtype) for _, v in tree_flatten(lm.model.parameters())}
        patched = sum(isinstance(m, prefill.PrefillDequantizedLinear) for _, m in lm.model.named_modules())
        prompt = np.array(lm.model(mx.array(TOKENS)).astype(mx.float32))
        one = np.array(lm.model(mx.array(TOKENS)[:, :1]).astype(mx.float32))
        return lm.extra["compute"], dtypes, patched, prompt, one

    decided, dtypes, patched, prompt, one = engine.run(run, timeout=120)
    native, _, _ = _logits(engine, variants[variant], "native")
    assert decided.mode == "mixed" and patched >= 7
    assert dtypes == {"mlx.core.uint32", "mlx.core.float32"}  # packed weights kept, no bf16 left
    scale = np.abs(native).max()
    tolerance = 1e-4 if variant == "q4" else 0.05  # bf16 scales: native computes with bf16 activations
    assert np.abs(prompt - native).max() <= tolerance * scale
    assert np.abs(one[:, 0] - native[:, 0]).max() <= tolerance * scale
    assert _kl(prompt, native) < 1e-3


def test_fake_quantized_fp32_matches_real_quantized_model(engine, tiny_llama, variants) -> None:
    """Quantization work on fake-quantized fp32 weights computes what the quantized model computes."""
    import numpy as np

    real, _, _ = _logits(engine, variants["q4"], "native")

    def run(ctx):
        import mlx.core as mx
        import mlx.nn as nn

        lm = load(tiny_llama, compute="fp32")
        names = [n for n, m in lm.model.named_modules() if isinstance(m, (nn.Linear, nn.Embedding))]
        with fake_quantized(lm.model, {n: Candidate(4, 64) for n in names}):
            fake = np.array(lm.model(mx.array(TOKENS)))
        restored = np.array(lm.model(mx.array(TOKENS)))
        return fake, restored, names

    fake, restored, names = engine.run(run, timeout=120)
    assert len(names) >= 8
    assert np.abs(fake - real).max() <= 1e-4 * np.abs(real).max()
    assert np.abs(restored - real).max() > 1e-3 * np.abs(real).max()  # originals are back


def test_fake_quantize_values(engine) -> None:
    def run(ctx):
        import mlx.core as mx

        w = mx.random.normal((32, 128), key=mx.random.key(3)).astype(mx.bfloat16)
        out = {}
        for cand in (Candidate(4, 64), Candidate(8, 32), Candidate(2, 128), Candidate(4, 32, "mxfp4")):
            fq = fake_quantize(w, cand)
            q = mx.quantize(w, group_size=cand.group_size, bits=cand.bits, mode=cand.mode)
            biases = q[2] if cand.mode == "affine" else None
            ref = mx.dequantize(q[0], q[1], biases, group_size=cand.group_size, bits=cand.bits, mode=cand.mode)
            err = mx.abs(fq - w.astype(mx.float32)).mean().item()
            out[cand.key] = (fq.dtype == mx.float32, fq.shape == w.shape,
                             mx.array_equal(fq, ref.astype(mx.float32)).item(), err)
        return out

    results = engine.run(run)
    for key, (is_fp32, same_shape, exact, _) in results.items():
        assert is_fp32 and same_shape and exact, key
    assert results["affine:8b:g32"][3] < results["affine:4b:g64"][3] < results["affine:2b:g128"][3]
    with pytest.raises(QuantError, match="multiple of 64"):
        engine.run(lambda ctx: fake_quantize(__import__("mlx.core").core.zeros((4, 96)), Candidate(4, 64)))


def test_policy(engine, variants) -> None:
    assert prefer_fp32(100, 1000) and not prefer_fp32(600, 1000) and not prefer_fp32(0, 1000)

    def run(ctx):
        from mlx_lm.utils import load_model

        model, _ = load_model(variants["q4"])
        bf16, _ = load_model(variants["bf16"])
        gpu = plan(model, "fp32", cpu=False)
        slow = plan(model, "auto", cpu=True, fast=False, memory=2**40)
        tight = plan(bf16, "auto", cpu=True, fast=True, memory=1000)
        roomy = plan(model, "fp32", cpu=True, fast=True, memory=2**40)
        mixed = plan(model, "auto", cpu=True, fast=True, memory=1000)
        native = plan(model, "native", cpu=True, fast=True, memory=2**40)
        return gpu, slow, tight, roomy, mixed, native

    gpu, slow, tight, roomy, mixed, native = engine.run(run)
    assert gpu.mode == "native" and "GPU" in gpu.reason
    assert slow.mode == "native" and "BLAS" in slow.reason
    assert tight.mode == "native" and "fit" in tight.reason
    assert roomy.mode == "fp32" and roomy.quantized
    # a quantized model is never dequantized by "auto": decode reads the packed weights (as bare mlx-lm)
    assert mixed.mode == "mixed" and mixed.quantized and "decode" in mixed.reason
    assert native.mode == "native"
    # 4-bit with fp32 scales and biases (g64): 4 + 64/64 bits per weight; fp32: 32 bits per weight
    assert roomy.fp32_bytes > 5 * roomy.native_bytes


def test_setting_env_and_bad_value(engine, variants, monkeypatch) -> None:
    monkeypatch.setenv("TEMPER_CPU_COMPUTE", "native")
    _, decided, _ = _logits(engine, variants["bf16"], "auto")
    assert decided.mode == "native" and "native" in decided.reason
    with pytest.raises(TemperError, match="cpu_compute must be one of"):
        engine.run(lambda ctx: load(variants["bf16"], compute="fast"))


def test_fp32_model_untouched(engine, tiny_llama) -> None:
    _, decided, dtypes = _logits(engine, tiny_llama, "fp32")
    assert decided.mode == "native" and decided.reason == "already fp32"
    assert dtypes == {"mlx.core.float32"}


def test_maybe_upcast_returns_plan_for_native(engine, variants) -> None:
    def run(ctx):
        from mlx_lm.utils import load_model

        model, _ = load_model(variants["bf16"])
        return maybe_upcast(model, "native").mode

    assert engine.run(run) == "native"


@pytest.mark.parametrize("quantized", [False, True])
def test_fp32_in_steps_never_holds_two_whole_models(engine, quantized) -> None:
    """Casting (or dequantizing) a model to fp32 must peak near the fp32 model plus one module: cast in one
    graph (set_dtype, or mlx-lm's dequantize_model), the old and the new copies of every weight coexist."""
    import mlx.core as mx
    import mlx.nn as nn
    from temper.core.accel.compute import to_fp32_in_steps

    def run(ctx):
        model = nn.Sequential(*[nn.Linear(512, 512, bias=False) for _ in range(16)])
        model.set_dtype(mx.bfloat16)
        if quantized:
            nn.quantize(model, group_size=64, bits=4)
        mx.eval(model.parameters())
        layer_fp32 = 512 * 512 * 4
        mx.reset_peak_memory()
        before = mx.get_active_memory()
        to_fp32_in_steps(model, dequantize=quantized)
        extra = mx.get_peak_memory() - before
        x = mx.ones((1, 512))
        assert all(p.dtype == mx.float32 for _, p in tree_flatten(model.parameters()))
        assert not any(isinstance(m, nn.QuantizedLinear) for _, m in model.named_modules())
        mx.eval(model(x))
        return extra, 16 * layer_fp32, layer_fp32

    from mlx.utils import tree_flatten

    extra, whole, one = engine.run(run, timeout=120)
    assert extra <= whole + 2 * one, (extra, whole)
