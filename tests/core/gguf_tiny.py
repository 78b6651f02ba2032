"""Write a tiny llama GGUF the way llama.cpp's converter does (q/k rows permuted for its RoPE layout).

Used by the GGUF import tests so the name mapping, the permutation and the tokenizer are checked in CI
without the 93 MB demo file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DIMS = {"hidden": 64, "layers": 2, "inter": 128, "heads": 4, "kv_heads": 2}


def llamacpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.LlamaModel.permute."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hf_weights(vocab: int, seed: int = 0, dims: dict[str, int] | None = None,
               arch: str = "llama") -> dict[str, np.ndarray]:
    dims = dims or DIMS
    rng = np.random.default_rng(seed)
    h, inter = dims["hidden"], dims["inter"]
    head_dim = h // dims["heads"]
    kv = dims["kv_heads"] * head_dim

    def r(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    w = {"model.embed_tokens.weight": r(vocab, h), "model.norm.weight": 1 + r(h), "lm_head.weight": r(vocab, h)}
    for i in range(dims["layers"]):
        p = f"model.layers.{i}."
        w.update({
            p + "input_layernorm.weight": 1 + r(h), p + "post_attention_layernorm.weight": 1 + r(h),
            p + "self_attn.q_proj.weight": r(h, h), p + "self_attn.k_proj.weight": r(kv, h),
            p + "self_attn.v_proj.weight": r(kv, h), p + "self_attn.o_proj.weight": r(h, h),
            p + "mlp.gate_proj.weight": r(inter, h), p + "mlp.up_proj.weight": r(inter, h),
            p + "mlp.down_proj.weight": r(h, inter),
        })
        if arch == "qwen2":  # q/k/v biases
            w.update({p + "self_attn.q_proj.bias": r(h), p + "self_attn.k_proj.bias": r(kv),
                      p + "self_attn.v_proj.bias": r(kv)})
        if arch == "qwen3":  # per-head q/k norms
            w.update({p + "self_attn.q_norm.weight": 1 + r(head_dim), p + "self_attn.k_norm.weight": 1 + r(head_dim)})
    return w


GGUF_NAMES = {
    "model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output",
    "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
}


def gguf_name(hf: str) -> str:
    base, _, leaf = hf.rpartition(".")
    if base in GGUF_NAMES:
        return f"{GGUF_NAMES[base]}.{leaf}"
    _, _, layer, rest = base.split(".", 3)
    return f"blk.{layer}.{GGUF_NAMES[rest]}.{leaf}"


def random_kquant(rows: int, cols: int, qtype: str, rng: np.random.Generator) -> np.ndarray:
    """Random but valid K-quant blocks (gguf-py cannot quantize to K types): random bits, sane fp16 scales."""
    import gguf

    qt = getattr(gguf.GGMLQuantizationType, qtype)
    block, nbytes = gguf.GGML_QUANT_SIZES[qt]
    raw = rng.integers(0, 256, size=(rows, cols // block, nbytes), dtype=np.uint8)
    scale = np.array([0.002], dtype=np.float16).view(np.uint8)
    if qtype == "Q6_K":  # d is the last 2 bytes of the block
        raw[..., -2:] = scale
    else:  # d and dmin lead the block
        raw[..., 0:2] = scale
        raw[..., 2:4] = scale
    return raw.reshape(rows, -1)


def write_gguf(out: Path, tokenizer_dir: Path, *, qtype: str = "F32", arch: str = "llama",
               seed: int = 0, dims: dict[str, int] | None = None,
               rope_freqs: list[float] | None = None) -> dict[str, np.ndarray]:
    """Write `out` from random HF-layout weights; return those weights (the truth to compare with).

    qtype applies to the 2-D matrices (F32, Q8_0, Q4_0, Q4_1, Q5_0...); norms stay F32. For K types
    (Q4_K, Q6_K...) the matrices are random valid blocks and the truth returned is their dequantized
    values, in HF row order. K types need dimensions that are multiples of 256 (pass `dims`)."""
    import gguf

    dims = dims or DIMS
    rng = np.random.default_rng(seed + 1)

    tok = json.loads((tokenizer_dir / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    for added in tok.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    special = {a["content"] for a in tok.get("added_tokens", [])}
    weights = hf_weights(len(tokens), seed, dims, arch)
    permute = arch == "llama"  # llama.cpp permutes q/k for the llama family only

    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_name("tiny")
    writer.add_block_count(dims["layers"])
    writer.add_context_length(2048)
    writer.add_embedding_length(dims["hidden"])
    writer.add_feed_forward_length(dims["inter"])
    writer.add_head_count(dims["heads"])
    writer.add_head_count_kv(dims["kv_heads"])
    writer.add_rope_dimension_count(dims["hidden"] // dims["heads"])
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in special else 1 for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab["<|im_start|>"])
    writer.add_eos_token_id(vocab["<|im_end|>"])
    writer.add_pad_token_id(vocab["<|endoftext|>"])
    writer.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                             "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    for name, w in list(weights.items()):
        data = w
        heads = dims["heads"] if name.endswith("q_proj.weight") else dims["kv_heads"]
        if permute and name.endswith(("q_proj.weight", "k_proj.weight")):
            data = llamacpp_permute(w, heads)
        qt = getattr(gguf.GGMLQuantizationType, qtype)
        if data.ndim == 2 and qtype.endswith("_K"):
            packed = random_kquant(data.shape[0], data.shape[1], qtype, rng)
            writer.add_tensor(gguf_name(name), packed, raw_shape=packed.shape, raw_dtype=qt)
            values = gguf.quants.dequantize(packed, qt).astype(np.float32)
            if permute and name.endswith(("q_proj.weight", "k_proj.weight")):
                values = values[np.argsort(llamacpp_permute(np.arange(values.shape[0]), heads))]
            weights[name] = values
        elif data.ndim == 2 and qtype != "F32":
            packed = gguf.quants.quantize(data, qt)
            writer.add_tensor(gguf_name(name), packed, raw_shape=packed.shape, raw_dtype=qt)
        else:
            writer.add_tensor(gguf_name(name), data)
    if rope_freqs is not None:  # Llama-3.1-style RoPE scaling, as llama.cpp's converter stores it
        writer.add_tensor("rope_freqs.weight", np.array(rope_freqs, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return weights
