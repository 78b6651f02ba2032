"""Error-compensated (GPTQ) rounding and clip search: exact MLX format, loads and verifies, beats
round-to-nearest, and holds one block's H matrices at a time."""

from __future__ import annotations

import pytest
from quant_support import HELD_OUT, chunks_for
from temper.core.quant.gptq import HRegistry, Rounding, round_with_gptq
from temper.core.quant.inventory import load_inventory
from temper.core.quant.recipes import RecipeRequest, build_plan
from temper.core.quant.verify import verify
from temper.core.quant.write import write_quantized

CALIB = """Rain fell on the harbour all night, and by morning the nets were heavy with seaweed. The old
fisherman counted his crates twice. print(sum(x * x for x in range(10))) The train leaves at 7:45 and
arrives at noon; tickets cost forty dollars. {"name": "weather", "arguments": {"city": "Oslo"}} Der Hund
schläft unter dem Tisch, während die Kinder im Garten spielen. Seven times eight is fifty-six."""


def calib_chunks(path, count=6, length=48):
    from mlx_lm.utils import load_tokenizer
    from temper.core.quant.evaluate import text_chunks

    return text_chunks(load_tokenizer(path), (CALIB + " ") * 8, length=length, count=count)


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8])
def test_pack_lays_integers_out_as_mx_quantize_does(bits, engine):
    def run(ctx):
        import mlx.core as mx
        import numpy as np
        from temper.core.quant.packing import pack

        w = mx.random.normal((8, 128), key=mx.random.key(bits))
        wq, s, b = mx.quantize(w, group_size=32, bits=bits)
        deq = mx.dequantize(wq, s, b, group_size=32, bits=bits).reshape(8, 4, 32)
        q = mx.round((deq - b[..., None]) / s[..., None]).reshape(8, 128)
        return np.array_equal(np.array(pack(q, bits)), np.array(wq))
    assert engine.run(run)


def test_clip_search_never_loses_to_round_to_nearest(engine):
    def run(ctx):
        import mlx.core as mx
        import numpy as np
        from temper.core.quant.rounding import choose_params, round_to_grid

        w = mx.random.normal((64, 256), key=mx.random.key(0)) * mx.random.uniform(shape=(64, 1), key=mx.random.key(1))
        wq, s, b = mx.quantize(w, group_size=64, bits=3)
        rtn = ((mx.dequantize(wq, s, b, group_size=64, bits=3) - w) ** 2).sum().item()
        wn = np.array(w)
        s2, b2 = choose_params(wn, None, 3, 64, mx.float32)
        q = round_to_grid(wn, s2, b2, 3, 64).reshape(64, 4, 64)
        clipped = float((((s2[..., None] * q + b2[..., None]).reshape(64, 256) - wn) ** 2).sum())
        s1, b1 = choose_params(wn, None, 3, 64, mx.float32, shrinks=(1.0,))
        return rtn, clipped, np.array_equal(s1, np.array(s)) and np.array_equal(b1, np.array(b))
    rtn, clipped, same_as_mlx = engine.run(run)
    assert clipped < rtn
    assert same_as_mlx          # shrink 1.0 is mx.quantize's own grid, bit for bit


def test_lazy_batched_gptq_equals_the_one_column_at_a_time_update():
    """The blocked, transposed loop gives the integers of the textbook loop (each column's error pushed
    onto every later column through the full inverse Hessian), on an ill-conditioned H."""
    import mlx.core as mx
    import numpy as np
    from temper.core.quant.rounding import choose_params, gptq, inverse_cholesky

    rng = np.random.default_rng(0)
    rows, cols, gs = 24, 320, 32
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    x = rng.standard_normal((400, cols)).astype(np.float32) * (1 + 4 * rng.random(cols)).astype(np.float32)
    h = x.T @ x
    h[:, 7] = h[7, :] = 0.0                                   # a dead input column
    q, s, b = gptq(w, h, 3, gs, mx.float32, clip=False, act_order=False)
    # reference: static groups are not used here, so group parameters come from the updated weights
    hd = h.copy()
    hd[7, 7] = 1.0
    wr = w.copy()
    wr[:, 7] = 0.0
    u = inverse_cholesky(hd)
    qr = np.zeros((rows, cols), dtype=np.uint8)
    for c in range(cols):
        if c % gs == 0:
            sg, bg = choose_params(wr[:, c:c + gs], None, 3, gs, mx.float32, shrinks=(1.0,))
            sc, bc = sg[:, 0], bg[:, 0]
        qc = np.clip(np.rint((wr[:, c] - bc) / sc), 0, 7)
        e = (wr[:, c] - (sc * qc + bc)) / u[c, c]
        wr[:, c:] -= np.outer(e, u[c, c:])
        qr[:, c] = qc
    assert (q == qr).mean() > 0.995          # float32 summation order may flip a rare tie
    assert q.dtype == np.uint8 and s.shape == (rows, cols // gs)


def test_the_inverse_cholesky_factor_is_the_same_from_openblas_mlx_and_numpy(monkeypatch):
    """OpenBLAS's spotrf + strtri where a copy is at hand (the preloaded one or NumPy's bundled one); else MLX's
    CPU stream where it has a fast LAPACK (on MLX's CPU backend one factorization of the reversed matrix and a
    triangular inverse, elsewhere factorize-invert-factorize), else NumPy's cholesky + inv: all give the upper
    factor U of (H + λI)⁻¹, Uᵀ U = (H + λI)⁻¹."""
    import sys

    import numpy as np
    from temper.core.accel import blas, lapack
    from temper.core.quant import host_math, rounding

    if lapack.find() is None:
        assert not sys.platform.startswith("linux")      # every pip NumPy on Linux bundles an OpenBLAS
        pytest.skip("no OpenBLAS LAPACK here (NumPy on Accelerate)")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 96)).astype(np.float32) * (1 + 5 * rng.random(96)).astype(np.float32)
    h = x.T @ x
    got = {}
    calls = {"reversed": 0, "lapack": 0}
    reversed_form, openblas = rounding._upper_inv_chol_mlx_reversed, lapack.lower_inverse_cholesky

    def counted_reversed(*a):
        calls["reversed"] += 1
        return reversed_form(*a)

    def counted_lapack(*a, **k):
        calls["lapack"] += 1
        return openblas(*a, **k)
    monkeypatch.setattr(rounding, "_upper_inv_chol_mlx_reversed", counted_reversed)
    monkeypatch.setattr(lapack, "lower_inverse_cholesky", counted_lapack)
    found = lapack.find()
    cases = [(True, fast, host) for fast, host in ((True, True), (False, False))]
    cases += [(False, fast, host) for fast, host in ((True, True), (True, False), (False, True))]
    for with_lapack, fast, host in cases:
        monkeypatch.setattr(lapack, "find", lambda w=with_lapack: found if w else None)
        monkeypatch.setattr(blas, "cpu_linalg_fast", lambda fast=fast: fast)
        monkeypatch.setattr(host_math, "FORCE", host)
        got[with_lapack, fast, host] = u = rounding.inverse_cholesky(h)
        lam = rounding.DAMP * float(np.mean(np.diag(h)))
        inv = np.linalg.inv(h.astype(np.float64) + lam * np.eye(96))
        assert np.allclose(np.triu(u), u) and (np.diag(u) > 0).all()
        assert np.abs(u.T.astype(np.float64) @ u - inv).max() < 1e-4 * np.abs(inv).max()
    assert calls == {"reversed": 1, "lapack": 3}    # both found cases, and NumPy's path asking (finding none)
    ref = got[True, True, True]
    for key, u in got.items():
        assert np.abs(ref - u).max() < 1e-4 * np.abs(ref).max(), key


def test_openblas_factor_flags_a_matrix_that_is_not_positive_definite():
    import numpy as np
    from temper.core.accel import lapack

    if lapack.find() is None:
        pytest.skip("no OpenBLAS LAPACK here (NumPy on Accelerate)")

    a = np.array([[1.0, 2.0], [2.0, 1.0]], dtype=np.float32)      # eigenvalues 3 and -1
    assert np.isnan(lapack.lower_inverse_cholesky(a)).all()
    good = np.array([[4.0, 2.0], [2.0, 3.0]], dtype=np.float32)
    inv_lower = lapack.lower_inverse_cholesky(good)
    lower = np.linalg.cholesky(good.astype(np.float64))
    assert np.allclose(inv_lower @ lower, np.eye(2), atol=1e-6) and inv_lower[0, 1] == 0


def _write(engine, source, plan, out, rounding, chunks, events=None):
    def run(ctx):
        write_quantized(source, plan, out, rounding=rounding, calibration=chunks,
                        progress=(lambda *a: events.append(a)) if events is not None else None)
        return verify(out, plan)
    return engine.run(run)


def test_gptq_output_loads_with_mlx_lm_verifies_and_reports_each_tensor(trained_tiny, engine, tmp_path):
    plan = build_plan("uniform-3", load_inventory(trained_tiny), RecipeRequest())
    events: list[tuple] = []
    report = _write(engine, trained_tiny, plan, tmp_path / "g", Rounding(), calib_chunks(trained_tiny), events)
    assert report.ok and report.tensor_bytes * 8 == plan.total_bits
    assert "GPTQ error-compensated rounding" in (tmp_path / "g" / "README.md").read_text()

    def gen(ctx):
        from mlx_lm import generate, load

        model, tok = load(str(tmp_path / "g"))
        return generate(model, tok, prompt="hello", max_tokens=4)
    assert isinstance(engine.run(gen), str)
    per_tensor = [e for e in events if e[0] == "quantize" and len(e) > 3 and e[1] > 0]
    quantized = [e.path for e in plan.entries if e.candidate is not None]
    assert sorted(e[3] for e in per_tensor) == sorted(quantized)
    assert [e[1] for e in per_tensor] == list(range(1, len(quantized) + 1))
    assert all(e[2] == len(quantized) for e in per_tensor)


def test_gptq_beats_round_to_nearest_on_held_out_text_at_3_bits(trained_tiny, engine, tmp_path):
    from temper.core.quant.evaluate import compare_folder, reference

    plan = build_plan("uniform-3", load_inventory(trained_tiny), RecipeRequest())
    chunks = calib_chunks(trained_tiny)
    assert not set(map(tuple, chunks)) & set(map(tuple, chunks_for(trained_tiny)))
    assert HELD_OUT[:40] not in CALIB
    _write(engine, trained_tiny, plan, tmp_path / "rtn", Rounding(gptq=False, clip=False), chunks)
    _write(engine, trained_tiny, plan, tmp_path / "gptq", Rounding(clip=False), chunks)

    def run(ctx):
        ref = reference(trained_tiny, chunks_for(trained_tiny, count=4))
        return [compare_folder(ref, tmp_path / n).kl_mean for n in ("rtn", "gptq")]
    rtn, gptq = engine.run(run)
    assert gptq < 0.9 * rtn


def test_h_matrices_are_held_one_block_at_a_time(trained_tiny, engine):
    plan = build_plan("uniform-4", load_inventory(trained_tiny), RecipeRequest())
    registry = HRegistry()

    def run(ctx):
        from mlx_lm.utils import load_model

        model, _ = load_model(trained_tiny, lazy=True)
        return round_with_gptq(model, plan, calib_chunks(trained_tiny, count=2), Rounding(clip=False),
                               on_tensor=lambda _p: None, registry=registry)
    done = engine.run(run)
    # 4 blocks x 7 Linears and the lm_head rounded; per block only 4 distinct inputs
    # (attention input shared by q/k/v, o_proj's, MLP input shared by gate/up, down_proj's)
    assert done["tensors"] == 4 * 7 + 1
    assert registry.peak_count == 4
    hidden, inter = 128, 384
    assert registry.peak_bytes == 4 * (3 * hidden * hidden + inter * inter)
    assert not registry.live


def test_gptq_on_gemma4_writes_a_verified_model(tiny_gemma4, engine, tmp_path):
    plan = build_plan("uniform-4", load_inventory(tiny_gemma4), RecipeRequest())
    report = _write(engine, tiny_gemma4, plan, tmp_path / "g4", Rounding(), calib_chunks(tiny_gemma4, count=2))
    assert report.ok


def test_cli_rounding_flags_reach_the_writer(trained_tiny, engine, tmp_path):
    import numpy as np
    from mlx.utils import tree_flatten
    from temper.cli.main import main

    assert main(["quantize", str(trained_tiny), "--recipe", "uniform-4", "-o", str(tmp_path / "d"), "--json", "--no-eval"]) == 0
    assert main(["quantize", str(trained_tiny), "--recipe", "uniform-4", "-o", str(tmp_path / "r"), "--json", "--no-eval",
                 "--no-gptq", "--no-clip"]) == 0
    assert "GPTQ error-compensated rounding" in (tmp_path / "d" / "README.md").read_text()
    assert "Rounding: round-to-nearest\n" in (tmp_path / "r" / "README.md").read_text()

    def run(ctx):
        import mlx.core as mx
        import mlx.nn as nn
        from mlx_lm import load

        plain, _ = load(str(trained_tiny))
        nn.quantize(plain, group_size=64, bits=4)
        rtn, _ = load(str(tmp_path / "r"))
        gptq, _ = load(str(tmp_path / "d"))
        def arr(v):
            return np.array(v if v.dtype == mx.uint32 else v.astype(mx.float32))

        want = dict(tree_flatten(plain.parameters()))
        same = [np.array_equal(arr(v), arr(want[k])) for k, v in tree_flatten(rtn.parameters())]
        moved = [np.array_equal(arr(v), arr(want[k])) for k, v in tree_flatten(gptq.parameters())
                 if k.endswith(".weight") and v.dtype == mx.uint32]
        return all(same), any(not m for m in moved)
    assert engine.run(run) == (True, True)


def test_capture_pass_skips_plain_blocks_and_rounds_the_same(trained_tiny, engine):
    """Blocks returning a plain array are not run in the capture pass when the head is not rounded by GPTQ
    (it needs the final hidden states); the result is the same integers, scales and biases as running
    every block."""
    import dataclasses

    full = build_plan("uniform-4", load_inventory(trained_tiny), RecipeRequest())
    plan = dataclasses.replace(full, entries=[e for e in full.entries if e.path != "lm_head"])

    def run(ctx):
        import mlx.core as mx
        import numpy as np
        from mlx.utils import tree_flatten
        from mlx_lm.utils import load_model

        out = {}
        for capture in ("auto", "run"):
            model, _ = load_model(trained_tiny, lazy=True)
            done = round_with_gptq(model, plan, calib_chunks(trained_tiny, count=2), Rounding(),
                                   on_tensor=lambda _p: None, capture=capture)
            out[capture] = (done["capture"], {k: np.array(v if v.dtype == mx.uint32 else v.astype(mx.float32))
                                              for k, v in tree_flatten(model.parameters()) if "layers" in k})
        return out
    out = engine.run(run)
    assert out["auto"][0] == "skip" and out["run"][0] == "run"
    a, r = out["auto"][1], out["run"][1]
    assert a.keys() == r.keys() and all((a[k] == r[k]).all() for k in a)
