"""The optional KL-distillation polish (core/quant/polish.py): it lowers held-out KL, changes nothing but the
trained scales and biases, leaves a folder plain mlx-lm loads and verify accepts, and runs from the request."""

from __future__ import annotations

import shutil

import pytest
from temper.core.quant.inventory import load_inventory
from temper.core.quant.recipes import build_plan
from temper.core.quant.write import write_quantized

STEPS = 60
LR = 1e-4


def _tokens(path, split, samples, calibration=None):
    from mlx_lm.utils import load_tokenizer
    from temper.core.quant.calibration import calibration_set, evaluation_set

    tok = load_tokenizer(path)
    if split == "calibration":
        return calibration_set(tok, samples=samples, seq_len=64)
    return evaluation_set(tok, samples=samples, seq_len=64, calibration=calibration)


@pytest.fixture(scope="module")
def polished(trained_tiny, engine, tmp_path_factory):
    """trained-tiny at uniform 3 bits (round to nearest), and a copy polished on calibration text."""
    from temper.core.quant.polish import polish_folder

    root = tmp_path_factory.mktemp("polish")
    calib = _tokens(trained_tiny, "calibration", 8)
    plan = engine.run(lambda ctx: build_plan("uniform-3", load_inventory(trained_tiny)))
    engine.run(lambda ctx: write_quantized(trained_tiny, plan, root / "plain"))
    shutil.copytree(root / "plain", root / "polished")
    seen = []
    chunks = [list(map(int, r)) for r in calib.chunks]
    report = engine.run(lambda ctx: polish_folder(root / "polished", trained_tiny, chunks, STEPS, learning_rate=LR,
                                                  progress=lambda *a: seen.append(a)))
    return root, plan, calib, report, seen


def _tensors(folder):
    import mlx.core as mx

    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(mx.load(str(f)))
    return out


def test_polish_lowers_kl_on_held_out_text(polished, trained_tiny, engine):
    from temper.core.quant.evaluate import compare_folder, reference

    root, _, calib, report, _ = polished
    held = _tokens(trained_tiny, "evaluation", 6, calibration=calib)   # never seen by the polish

    def run(ctx):
        ref = reference(trained_tiny, [list(map(int, r)) for r in held.chunks])
        return compare_folder(ref, root / "plain"), compare_folder(ref, root / "polished")

    plain, polished_q = engine.run(run)
    assert report.best_step > 0 and report.kl_after < report.kl_before
    assert polished_q.kl_mean < 0.95 * plain.kl_mean, (plain.kl_mean, polished_q.kl_mean)


def test_only_scales_and_biases_change(polished):
    import mlx.core as mx

    root, *_ = polished
    before, after = _tensors(root / "plain"), _tensors(root / "polished")
    assert before.keys() == after.keys()
    changed = []
    for k, a in before.items():
        b = after[k]
        assert a.dtype == b.dtype and a.shape == b.shape, k
        if not mx.array_equal(a, b).item():
            changed.append(k)
    assert changed, "the polish changed nothing"
    assert all(k.endswith((".scales", ".biases")) for k in changed), [k for k in changed if "scales" not in k][:3]
    assert not any(k.endswith(".weight") for k in changed)      # packed weights bit for bit as written


def test_polished_folder_loads_with_plain_mlx_lm_and_verifies(polished, engine):
    from temper.core.quant.verify import verify

    root, plan, _, report, seen = polished
    assert engine.run(lambda ctx: verify(root / "polished", plan)).ok

    def run(ctx):
        from mlx_lm import generate, load

        model, tok = load(str(root / "polished"))
        return generate(model, tok, prompt="hello", max_tokens=4)

    assert isinstance(engine.run(run), str)
    card = (root / "polished" / "README.md").read_text()
    assert "- Polish: KL-distillation polish" in card and f"{report.kl_after:.4f}" in card
    steps = [a for a in seen if a[0] == "polish"]
    assert steps[-1][1:3] == (STEPS, STEPS) and "held-out" in steps[-1][3]
    assert any(a[0] == "teacher" for a in seen)


def test_no_gain_leaves_the_folder_untouched(polished, trained_tiny, engine, tmp_path):
    """A learning rate of zero cannot beat the unpolished model: nothing is rewritten."""
    from temper.core.quant.polish import polish_folder

    root, _, calib, *_ = polished
    shutil.copytree(root / "plain", tmp_path / "q")
    before = {f.name: f.read_bytes() for f in (tmp_path / "q").glob("*.safetensors")}
    chunks = [list(map(int, r)) for r in calib.chunks][:3]
    report = engine.run(lambda ctx: polish_folder(tmp_path / "q", trained_tiny, chunks, 3, learning_rate=0.0))
    assert report.best_step == 0 and report.kl_after == report.kl_before
    assert {f.name: f.read_bytes() for f in (tmp_path / "q").glob("*.safetensors")} == before
    assert "left unchanged" in (tmp_path / "q" / "README.md").read_text()


def test_the_request_runs_the_polish_before_verify(trained_tiny, engine, tmp_path):
    """`--polish N` / polish_steps: the pipeline polishes the folder before it is verified and renamed into
    place, with progress (and an ETA) per step."""
    from temper.core.engine.events import Progress
    from temper.core.quant.pipeline import quantize
    from temper.core.quant.request import QuantRequest

    out = tmp_path / "q"
    request = QuantRequest(model=str(trained_tiny), recipe="uniform-3", polish_steps=6, gptq=False, samples=4,
                           seq_len=32, evaluate=False, output=str(out))
    events = []

    def run(ctx):
        real = ctx.emit

        def emit(event):
            events.append(event)
            real(event)
        ctx.emit = emit
        return quantize(ctx, request)

    result = engine.run(run)
    assert result.verify.ok and "polish" in result.seconds
    polish = [e for e in events if isinstance(e, Progress) and e.phase == "polish"]
    assert polish[-1].done == polish[-1].total == 6
    assert any("eta_s" in e.data for e in polish)
    assert "- Polish:" in (out / "README.md").read_text()


def test_polish_flag_and_profile_key():
    import argparse

    from temper.cli.quantize import register, request_from
    from temper.core.profiles import loads
    from temper.core.quant.request import QuantRequest, QuantSettings

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    assert QuantSettings().polish_steps == 0                        # opt-in
    assert request_from(parser.parse_args(["quantize", "m", "--polish", "150"])).polish_steps == 150
    profile = loads("[quantize]\npolish_steps = 200\n")
    assert request_from(parser.parse_args(["quantize", "m"]), profile).polish_steps == 200
    with pytest.raises(Exception, match="polish"):
        QuantRequest(model="m", polish_steps=-1)


def test_ctrl_c_during_polish(trained_tiny, tmp_path, _temper_home):
    """Ctrl-C mid-polish: the job stops at its next step, exit 130, and no folder is left behind."""
    from test_interrupt import Watched, _check, _env, _temper

    out = tmp_path / "out" / "q"
    w = Watched(_temper("quantize", str(trained_tiny), "--recipe", "uniform-3", "--no-gptq", "--polish", "100000",
                        "--samples", "4", "--seq-len", "32", "--no-eval", "-o", str(out)), _env(_temper_home))
    w.wait_for(b"train KL")   # a step has run
    rc, elapsed, err = w.interrupt()
    _check(rc, elapsed, err, "nothing written (the half-written output folder is removed)")
    assert not out.exists() and list(out.parent.iterdir()) == []
