"""Build small models offline: random weights for any mlx-lm architecture, plus a trained tokenizer.

Used by the tests (which never download), by benchmarks that need a model of a given shape (an
8B-shaped Llama on the GPU machine), and by the trained fixture. The tokenizer is a byte-level BPE
trained on the fly with `tokenizers`, saved as tokenizer.json with a ChatML-style chat template that
also knows a `<think>` block, so the chat features have something real to drive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]

LLAMA_TINY: dict[str, Any] = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
}

GEMMA4_TEXT_TINY: dict[str, Any] = {
    "model_type": "gemma4_text",
    "architectures": ["Gemma4ForCausalLM"],
    "hidden_size": 64,
    "num_hidden_layers": 4,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 16,
    "global_head_dim": 32,
    "num_kv_shared_layers": 0,
    "hidden_size_per_layer_input": 0,
    "sliding_window": 32,
    "layer_types": ["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"],
    "max_position_embeddings": 4096,
    "final_logit_softcapping": 30.0,
    "use_double_wide_mlp": False,
    "tie_word_embeddings": True,
}

PRESETS = {"llama": LLAMA_TINY, "gemma4_text": GEMMA4_TEXT_TINY}


def default_corpus() -> str:
    """A fixed text (a frozen excerpt of the project's own sources, shipped in data/): offline and the same
    whatever the code around it becomes, so a tiny model built from a seed is the same model in every run
    (training on the live sources made test models, and tests that read their greedy output, shift with
    every edit)."""
    return (Path(__file__).parent / "data" / "tokenizer_corpus.txt").read_text()


def train_tokenizer(out: Path, *, vocab_size: int = 512, text: str | None = None) -> None:
    """Train a byte-level BPE tokenizer and write tokenizer.json + tokenizer_config.json into `out`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = text if text is not None else default_corpus()
    lines = [line for line in corpus.splitlines() if line.strip()] or [corpus]
    tok.train_from_iterator(lines, trainer=trainer)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "model_max_length": 4096,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
    }, indent=2))
    (out / "special_tokens_map.json").write_text(json.dumps({
        "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
    }, indent=2))


def build_model(
    out: Path,
    arch: str | dict[str, Any] = "llama",
    *,
    vocab_size: int = 512,
    seed: int = 0,
    dtype: str = "float32",
    overrides: dict[str, Any] | None = None,
    tokenizer_text: str | None = None,
) -> Path:
    """Write a random-weight model folder that mlx-lm's `load` accepts. Runs MLX: call it on one thread."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.utils import _get_classes, save_config

    config = dict(PRESETS[arch] if isinstance(arch, str) else arch)
    config.update(overrides or {})
    config["vocab_size"] = vocab_size
    if config["model_type"] == "gemma4_text":
        config.setdefault("vocab_size_per_layer_input", vocab_size)
    train_tokenizer(out, vocab_size=vocab_size, text=tokenizer_text)
    vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    config["eos_token_id"] = vocab["<|im_end|>"]
    config["pad_token_id"] = vocab["<|endoftext|>"]
    config["torch_dtype"] = dtype

    mx.random.seed(seed)
    model_cls, args_cls = _get_classes(config)
    model = model_cls(args_cls.from_dict(config))
    target = getattr(mx, dtype)
    weights = {k: v.astype(target) if mx.issubdtype(v.dtype, mx.floating) else v
               for k, v in tree_flatten(model.parameters())}
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})
    save_config(config, config_path=out / "config.json")
    return out


def save_random(out: Path, config: dict[str, Any], *, dtype: str = "bfloat16",
                tokenizer_vocab: int | None = 1024) -> dict[str, Any]:
    """Random weights for any mlx-lm config, written as mlx-lm writes a model (sharded safetensors). For
    benchmarks on real shapes: the model keeps its own vocabulary; `tokenizer_vocab` trains a small BPE
    tokenizer beside it (None: the caller puts a tokenizer there). Returns the config as written."""
    import mlx.core as mx
    from mlx_lm.utils import _get_classes, save_config, save_model

    out.mkdir(parents=True, exist_ok=True)
    config = dict(config, torch_dtype=dtype)
    if tokenizer_vocab:
        train_tokenizer(out, vocab_size=tokenizer_vocab)
        vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
        config.update(eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|endoftext|>"])
    model_cls, args_cls = _get_classes(config)
    args = args_cls.from_dict(config)
    model = model_cls(args)
    model.set_dtype(getattr(mx, dtype))
    mx.eval(model.parameters())
    save_model(out, model, donate_model=True)
    full = {**{k: v for k, v in vars(args).items() if not k.startswith("_") and v is not None}, **config}
    save_config(full, config_path=out / "config.json")
    del model
    mx.clear_cache()
    return full
