"""config.json for a GGUF import, from the `<arch>.*` metadata: llama, qwen2, qwen3.

Llama-3.x RoPE scaling is not in the metadata: llama.cpp stores the per-frequency factors as a
`rope_freqs` tensor; the parameters that reproduce it exactly are recovered from it.
"""

from __future__ import annotations

from typing import Any

from ..errors import TemperError

# GGUF architecture -> (mlx-lm model_type, HF class, q/k rows permuted by llama.cpp for its RoPE).
# llama.cpp permutes only the llama family (its "normal" RoPE); qwen2/qwen3 use NEOX RoPE, HF layout.
FAMILIES = {
    "llama": ("llama", "LlamaForCausalLM", True),
    "qwen2": ("qwen2", "Qwen2ForCausalLM", False),
    "qwen3": ("qwen3", "Qwen3ForCausalLM", False),
}
SUPPORTED = tuple(FAMILIES)


def import_error(message: str) -> TemperError:
    return TemperError(message)


def plain(value: Any) -> Any:
    if hasattr(value, "tolist") and not isinstance(value, (list, str)):
        return value.tolist()
    return value


def llama3_rope_factors(*, head_dim: int, base: float, factor: float, low: float = 1.0, high: float = 4.0,
                        original: int = 8192) -> list[float]:
    """The per-frequency factors llama.cpp stores as `rope_freqs` for Llama-3.1-style RoPE scaling."""
    import math

    out = []
    for i in range(0, head_dim, 2):
        wavelen = 2 * math.pi * base ** (i / head_dim)
        if wavelen < original / high:
            out.append(1.0)
        elif wavelen > original / low:
            out.append(factor)
        else:
            smooth = (original / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return out


def llama3_scaling(rope_freqs: list[float], *, head_dim: int, base: float) -> dict[str, Any]:
    """Recover mlx-lm's `rope_scaling` from a `rope_freqs` tensor: the Llama 3.x parameter sets that
    reproduce it exactly (factor = its largest value). Raises when none does."""
    factor = max(rope_freqs)
    for original in (8192, 4096, 16384, 32768, 2048):
        for low, high in ((1.0, 4.0), (1.0, 2.0), (2.0, 4.0)):
            expected = llama3_rope_factors(head_dim=head_dim, base=base, factor=factor, low=low, high=high,
                                           original=original)
            if len(expected) == len(rope_freqs) and all(
                    abs(a - b) <= 1e-4 * max(1.0, abs(b)) for a, b in zip(rope_freqs, expected, strict=True)):
                return {"rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                        "high_freq_factor": high, "original_max_position_embeddings": original}
    raise import_error("this GGUF's rope_freqs match no Llama-3 RoPE scaling we know: not supported yet")


def build_config(meta: dict[str, Any], names: set[str], *, vocab_size: int,
                 rope_freqs: list[float] | None = None) -> dict[str, Any]:
    arch = meta.get("general.architecture")
    if arch not in SUPPORTED:
        raise import_error(
            f"GGUF architecture {arch!r} is not supported yet (supported: {', '.join(SUPPORTED)})"
        )

    def get(key: str, default: Any = None) -> Any:
        return plain(meta.get(f"{arch}.{key}", default))

    try:
        hidden = int(get("embedding_length"))
        heads = int(get("attention.head_count"))
        model_type, hf_class, _ = FAMILIES[arch]
        config: dict[str, Any] = {
            "model_type": model_type,
            "architectures": [hf_class],
            "hidden_size": hidden,
            "num_hidden_layers": int(get("block_count")),
            "intermediate_size": int(get("feed_forward_length")),
            "num_attention_heads": heads,
            "num_key_value_heads": int(get("attention.head_count_kv", heads)),
            "rms_norm_eps": float(f'{float(get("attention.layer_norm_rms_epsilon", 1e-5)):.6g}'),
            "rope_theta": float(get("rope.freq_base", 10000.0)),
            "max_position_embeddings": int(get("context_length", 2048)),
            "vocab_size": vocab_size,
            "tie_word_embeddings": "output.weight" not in names,
        }
    except (TypeError, ValueError) as exc:
        raise import_error(f"GGUF metadata is missing {arch} hyper-parameters ({exc})") from exc
    if arch == "llama":
        config["attention_bias"] = "blk.0.attn_q.bias" in names
        config["mlp_bias"] = "blk.0.ffn_up.bias" in names
    elif arch == "qwen2" and "blk.0.attn_q.bias" not in names:
        raise import_error("this qwen2 GGUF has no q/k/v biases, which mlx-lm's qwen2 expects")
    head_dim = int(get("attention.key_length", hidden // heads))
    if head_dim != hidden // heads or arch == "qwen3":
        if arch == "qwen2":
            raise import_error(f"qwen2 with head_dim {head_dim} != hidden/heads is not supported")
        config["head_dim"] = head_dim
    rope_dims = get("rope.dimension_count")
    if rope_dims is not None and int(rope_dims) != head_dim:
        raise import_error(f"partial RoPE ({rope_dims} of {head_dim} dims) is not supported for {arch}")
    scaling = get("rope.scaling.type")
    if scaling and scaling != "none":
        if scaling != "linear":
            raise import_error(f"RoPE scaling {scaling!r} is not supported yet")
        config["rope_scaling"] = {"type": "linear", "factor": float(get("rope.scaling.factor", 1.0))}
    if "rope_freqs.weight" in names:
        if rope_freqs is None or arch != "llama":
            raise import_error("this GGUF's RoPE frequency factors (rope_freqs) are not supported here")
        config["rope_scaling"] = llama3_scaling(rope_freqs, head_dim=head_dim, base=config["rope_theta"])
    for key in ("bos_token_id", "eos_token_id", "padding_token_id"):
        value = meta.get(f"tokenizer.ggml.{key}")
        if value is not None:
            config[key.replace("padding", "pad")] = int(plain(value))
    return config
