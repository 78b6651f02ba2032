"""The tokenizer of a GGUF file, rebuilt from its metadata (vocabulary, merges, special tokens, chat
template) through transformers' GGUF tokenizer converter, which needs no torch when fed directly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .gguf_config import import_error, plain


def write_tokenizer(out: Path, meta: dict[str, Any]) -> None:
    """tokenizer.json + tokenizer_config.json (with the chat template) from the GGUF vocabulary."""
    try:
        from transformers import PreTrainedTokenizerFast
        from transformers.integrations.gguf.gguf_tokenizer_mapping import (
            GGUF_TOKENIZER_MAPPING,
            convert_gguf_tokenizer,
        )
    except ImportError:  # older transformers keep it under integrations.ggml
        from transformers import PreTrainedTokenizerFast
        from transformers.integrations.ggml import GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer

    if "tokenizer.ggml.tokens" not in meta:
        raise import_error("this GGUF carries no tokenizer vocabulary (tokenizer.ggml.tokens)")
    fields = {name: plain(meta[f"tokenizer.{key}"])
              for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items() if f"tokenizer.{key}" in meta}
    try:
        backend, extra = convert_gguf_tokenizer(meta["general.architecture"], fields)
    except Exception as exc:
        raise import_error(f"cannot rebuild the GGUF tokenizer ({type(exc).__name__}: {exc})") from exc
    tokens = fields["tokens"]

    def token(key: str) -> str | None:
        idx = meta.get(f"tokenizer.ggml.{key}")
        return tokens[int(plain(idx))] if idx is not None and int(plain(idx)) < len(tokens) else None

    kwargs: dict[str, Any] = {
        "bos_token": token("bos_token_id"), "eos_token": token("eos_token_id"),
        "unk_token": token("unknown_token_id"), "pad_token": token("padding_token_id"),
        "clean_up_tokenization_spaces": False, **(extra or {}),
    }
    if (template := meta.get("tokenizer.chat_template")) is not None:
        kwargs["chat_template"] = str(template)
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, **{k: v for k, v in kwargs.items() if v is not None})
    tok.save_pretrained(str(out))
    # Make the template visible to every reader, whichever file this transformers wrote it to.
    config_file = out / "tokenizer_config.json"
    data = json.loads(config_file.read_text())
    if "chat_template" in kwargs and "chat_template" not in data:
        data["chat_template"] = kwargs["chat_template"]
    data.setdefault("add_bos_token", bool(plain(meta.get("tokenizer.ggml.add_bos_token", False))))
    config_file.write_text(json.dumps(data, indent=2, ensure_ascii=False))
