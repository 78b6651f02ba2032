"""NaN / Inf weights are refused at load with the tensor's name (issue 16): before, chat printed garbage
with exit 0, sensitivity wrote a table of nan and quantize wrote a "verified" model."""

from __future__ import annotations

import pytest
from corrupt_models import with_nonfinite
from temper.cli.main import main
from temper.core.engine.finite import check_files, first_nonfinite
from temper.core.errors import ModelLoadError

COMMANDS = {
    "chat": lambda m, good, w: ["chat", str(m), "--prompt", "hi", "--no-save", "--max-tokens", "4"],
    "bench": lambda m, good, w: ["bench", str(m), "--pp", "8", "--tg", "2", "-n", "1", "--no-copy-test",
                                 "--no-warmup", "-q"],
    "sensitivity": lambda m, good, w: ["sensitivity", str(m), "--mode", "fast", "--samples", "2",
                                       "--seq-len", "16", "--out", str(w / "sens.json")],
    "quantize": lambda m, good, w: ["quantize", str(m), "--recipe", "uniform-4", "-o", str(w / "out")],
    "eval-base": lambda m, good, w: ["eval", str(m), str(good), "--chunks", "2", "--chunk-len", "16"],
    "eval-quant": lambda m, good, w: ["eval", str(good), str(m), "--chunks", "2", "--chunk-len", "16"],
}


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_nonfinite_weights_are_refused_by_name(command, value, tiny_llama, tmp_path, capsys):
    model, tensor = with_nonfinite(tiny_llama, tmp_path, value)
    work = tmp_path / "work"
    work.mkdir()
    code = main(COMMANDS[command](model, tiny_llama, work))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert tensor in last and "NaN or Inf" in last, err
    assert list(work.iterdir()) == []


def test_file_check_reads_every_tensor_and_names_the_bad_one(engine, tiny_llama, tmp_path):
    engine.run(lambda ctx: check_files(tiny_llama))          # a good model passes
    model, tensor = with_nonfinite(tiny_llama, tmp_path)
    with pytest.raises(ModelLoadError, match=tensor.replace(".", r"\.")):
        engine.run(lambda ctx: check_files(model))


def test_first_nonfinite_ignores_integer_arrays(engine):
    def job(ctx):
        import mlx.core as mx

        items = [("packed", mx.array([1, 2], dtype=mx.uint32)), *((f"w{i}", mx.ones((3,))) for i in range(40)),
                 ("late", mx.array([0.0, float("inf")]))]
        return first_nonfinite(items), first_nonfinite(items[:-1])

    assert engine.run(job) == ("late", None)


def test_bf16_nan_is_found(engine, tmp_path):
    def job(ctx):
        import mlx.core as mx

        return first_nonfinite([("x", mx.array([1.0, float("nan")]).astype(mx.bfloat16))])

    assert engine.run(job) == "x"


def test_a_float16_sum_that_overflows_is_not_a_false_alarm(engine):
    """Every value finite, the sum past float16's 65504: the fast sum says 'maybe', the exact test clears it."""
    def job(ctx):
        import mlx.core as mx

        big = mx.full((200_000,), 60000.0, dtype=mx.float16)
        return bool(mx.isfinite(mx.sum(big)).item()), first_nonfinite([("big", big)])

    summed_finite, found = engine.run(job)
    assert (summed_finite, found) == (False, None)
