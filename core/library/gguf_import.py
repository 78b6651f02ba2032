"""Import a GGUF file (llama.cpp, LM Studio, Ollama blobs) as an MLX model folder mlx-lm loads.

- Tensors come from `mx.load(file)`: Q4_0, Q4_1 and Q8_0 arrive as MLX affine quantized triples
  (group size 32) and are kept as they are (or dequantized with `dequantize=True`). Other types
  (K-quants, IQ, BF16) are dequantized by the `gguf` package (llama.cpp's reference code) and
  requantized to MLX affine g32 at about the same width (REQUANT_BITS), or kept as floats with
  `dequantize=True`. The metadata and tensor table are read by our own header parser.
- Architectures llama, qwen2 and qwen3. llama.cpp names are mapped to mlx-lm's, and for llama its
  RoPE row permutation of q/k is undone.
  The permutation moves whole output rows, and affine groups run along the input dimension, so the
  same row permutation applied to weight, scales and biases is exact: no requantization.
- config.json comes from the `<arch>.*` metadata; the tokenizer from the vocabulary and merges in the
  metadata through transformers' GGUF tokenizer converter; the chat template from
  `tokenizer.chat_template`. The folder is written atomically under models_dir().
Runs MLX: call it from one thread (the engine thread in the app; the CLI runs it on its main thread).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import atomic
from ..accel.dequant import dequantize_rows
from ..errors import TemperError
from ..paths import models_dir
from .gguf_config import FAMILIES, SUPPORTED, build_config, import_error, llama3_rope_factors, plain
from .gguf_tokenizer import write_tokenizer

__all__ = ["FAMILIES", "SUPPORTED", "import_gguf", "llama3_rope_factors", "read_metadata", "unpermute_rows",
           "write_tokenizer"]

Progress = Callable[[str, float], None]
_DTYPES = ("auto", "float16", "bfloat16", "float32")
_GGUF_GROUP = 32  # Q4_0 / Q4_1 / Q8_0 blocks hold 32 weights
_FLOAT_TYPES = {"F32", "F16", "BF16", "F64"}
# Types taken from MLX's reader as they are. Others (K-quants, IQ, BF16) are dequantized by gguf-py:
# MLX 0.32's reader turns Q4_K into values that disagree with llama.cpp's reference dequantizer from
# the second 32-element sub-block on (checked here on random blocks), and BF16 into float16.
_MLX_READS = {"F32", "F16", "Q4_0", "Q4_1", "Q8_0"}
# GGUF types MLX cannot hold as they are, requantized to MLX affine at group size 32. K-quants keep
# per-16 or per-32 sub-block scales; at 2-3 bits one more bit in g32 keeps the error near the original.
REQUANT_BITS = {"Q2_K": 3, "Q3_K": 4, "Q4_K": 4, "Q5_K": 5, "Q6_K": 6, "Q5_0": 5, "Q5_1": 5, "Q4_0": 4,
                "Q4_1": 4, "Q8_0": 8, "Q8_1": 8, "IQ4_NL": 4, "IQ4_XS": 4, "IQ3_XXS": 4, "IQ3_S": 4,
                "IQ2_XXS": 3, "IQ2_XS": 3, "IQ2_S": 3, "IQ1_S": 3, "IQ1_M": 3, "TQ1_0": 3, "TQ2_0": 3}

_TOP = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}
_BLOCK = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_SKIP = {"rope_freqs", "attn_rot_embd"}
_BLK = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.(weight|bias|scales|biases)$")


def mlx_name(gguf_name: str) -> str | None:
    """llama.cpp tensor name -> mlx-lm name (None for tensors mlx-lm rebuilds itself)."""
    if m := _BLK.match(gguf_name):
        layer, part, leaf = m.groups()
        if part in _SKIP:
            return None
        if part not in _BLOCK:
            raise import_error(f"unknown GGUF tensor {gguf_name!r}: this model variant is not supported")
        return f"model.layers.{layer}.{_BLOCK[part]}.{leaf}"
    base, _, leaf = gguf_name.rpartition(".")
    if base in _SKIP:
        return None
    if base not in _TOP:
        raise import_error(f"unknown GGUF tensor {gguf_name!r}: this model variant is not supported")
    return f"{_TOP[base]}.{leaf}"


def unpermute_rows(rows: int, n_head: int) -> list[int]:
    """Row order that undoes llama.cpp's q/k permutation for RoPE (convert_hf_to_gguf `permute`)."""
    import numpy as np

    if rows % (2 * n_head):
        raise import_error(f"cannot undo the RoPE permutation: {rows} rows for {n_head} heads")
    half = rows // n_head // 2
    perm = np.arange(rows).reshape(n_head, 2, half).swapaxes(1, 2).reshape(-1)  # gguf[i] = hf[perm[i]]
    return np.argsort(perm).tolist()  # hf[j] = gguf[inverse[j]]


def default_dtype() -> str:
    """float16 where a GPU runs MLX; float32 on MLX's CPU backend, whose half-precision kernels are
    10-50x slower than float32 ones (measured here: a 4-bit matmul, 0.5 ms with float32 scales vs
    47 ms with float16). The cost is scales and biases at 4 bytes: +1 bpw at group size 32."""
    import mlx.core as mx

    return "float16" if mx.default_device() == mx.gpu else "float32"


def read_gguf(file: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """(all metadata as plain Python values, tensor name -> GGML type name), from the header only."""
    import gguf

    from .gguf_files import read_gguf_header

    try:
        meta, tensors = read_gguf_header(file, everything=True)
    except (OSError, TemperError) as exc:
        raise import_error(f"{file.name} is not a readable GGUF file: {exc}") from exc
    types = {}
    for name, _, type_id in tensors:
        try:
            types[name] = gguf.GGMLQuantizationType(type_id).name
        except ValueError:
            types[name] = f"type{type_id}"
    return meta, types


def read_metadata(file: Path) -> dict[str, Any]:
    return read_gguf(Path(file))[0]


class _Dequantized(Mapping):
    """Tensors dequantized one at a time by the `gguf` package, for files MLX's reader refuses."""

    def __init__(self, file: Path) -> None:
        import gguf

        self._gguf = gguf
        self._tensors = {t.name: t for t in gguf.GGUFReader(str(file)).tensors}

    def __getitem__(self, name: str) -> Any:
        import mlx.core as mx
        import numpy as np

        t = self._tensors[name]
        data = self._gguf.quants.dequantize(t.data, t.tensor_type)
        return mx.array(np.asarray(data, dtype=np.float32).reshape(tuple(reversed(t.shape.tolist()))))

    def __iter__(self):
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)


def _load_tensors(file: Path) -> tuple[Mapping[str, Any], bool]:
    """(tensors, native): MLX's own GGUF reader, else per-tensor dequantizing with `gguf`."""
    import mlx.core as mx

    try:
        return mx.load(str(file)), True
    except Exception as exc:
        if "gguf" not in str(exc).lower():
            raise import_error(f"cannot read {file.name}: {exc}") from exc
    return _Dequantized(file), False


def import_gguf(
    file: str | Path,
    *,
    name: str | None = None,
    dequantize: bool = False,
    dtype: str = "auto",
    dest_root: Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    check: Callable[[], None] | None = None,
) -> Path:
    """Write an MLX model folder for `file`; return its path. Raises TemperError with a one-line reason."""
    import mlx.core as mx

    file = Path(file).expanduser()
    if not file.is_file():
        raise import_error(f"{file}: no such file")
    if dtype not in _DTYPES:
        raise import_error(f"dtype must be one of {', '.join(_DTYPES)}")
    report = progress or (lambda _msg, _frac: None)
    step = check or (lambda: None)
    name = name or file.stem
    if not name or "/" in name or name.startswith("."):
        raise import_error(f"{name!r} is not a usable folder name")
    dest = (dest_root or models_dir()) / name
    if dest.exists() and not overwrite:
        raise import_error(f"{dest} already exists: pick another --name or delete it first")

    report("reading metadata", 0.0)
    meta, types = read_gguf(file)
    report("reading tensors", 0.1)
    tensors, native = _load_tensors(file)
    step()
    names = set(tensors)
    arch = meta.get("general.architecture")
    vocab = len(meta.get("tokenizer.ggml.tokens") or []) or int(plain(meta.get(f"{arch}.vocab_size", 0)))
    rope_freqs = None
    if "rope_freqs.weight" in names:
        rope_freqs = [float(x) for x in tensors["rope_freqs.weight"].astype(mx.float32).tolist()]
    config = build_config(meta, names, vocab_size=vocab, rope_freqs=rope_freqs)
    dtype = default_dtype() if dtype == "auto" else dtype
    target = getattr(mx, dtype)
    permuted = FAMILIES[meta["general.architecture"]][2]
    heads = {"attn_q": config["num_attention_heads"], "attn_k": config["num_key_value_heads"]} if permuted else {}

    if native and any(types.get(n, "F32") not in _MLX_READS for n in names):
        redo = {n for n in names if types.get(n, "F32") not in _MLX_READS}
        reference, mlx_read = _Dequantized(file), tensors

        def fetch(n: str) -> Any:
            return reference[n] if n in redo else mlx_read[n]
    else:
        fetch = tensors.__getitem__
    weights: dict[str, Any] = {}
    quant: dict[str, tuple[int, int]] = {}
    actions: Counter[str] = Counter()
    groups = sorted({n.rsplit(".", 1)[0] for n in names})
    for i, base in enumerate(groups):
        step()
        if base.rsplit(".", 1)[-1] in _SKIP:
            continue
        gtype = types.get(f"{base}.weight", "F32")
        part = base.split(".")[-1] if base.startswith("blk.") else base
        parts = {leaf: fetch(f"{base}.{leaf}") for leaf in ("weight", "scales", "biases", "bias")
                 if f"{base}.{leaf}" in names}
        w = parts.get("weight")
        if part in heads and w is not None:
            order = mx.array(unpermute_rows(w.shape[0], heads[part]))
            parts = {leaf: mx.take(v, order, axis=0) for leaf, v in parts.items()}
        path = mlx_name(f"{base}.weight").rsplit(".", 1)[0]
        if w is not None and w.dtype == mx.uint32 and "scales" in parts:  # Q4_0 / Q4_1 / Q8_0 as MLX triples
            bits = parts["weight"].shape[-1] // parts["scales"].shape[-1]
            if dequantize:
                parts = {"weight": dequantize_rows(parts["weight"], parts["scales"], parts["biases"],
                                                   group_size=_GGUF_GROUP, bits=bits, dtype=target),
                         **({"bias": parts["bias"].astype(target)} if "bias" in parts else {})}
                actions[f"{gtype} dequantized"] += 1
            else:
                quant[path] = (bits, _GGUF_GROUP)
                parts = {leaf: (v if leaf == "weight" else v.astype(target)) for leaf, v in parts.items()}
                actions[f"{gtype} kept"] += 1
        elif (gtype not in _FLOAT_TYPES and not dequantize and w is not None and w.ndim == 2
              and w.shape[-1] % _GGUF_GROUP == 0):
            bits = REQUANT_BITS.get(gtype, 8)
            q, scales, biases = mx.quantize(parts["weight"].astype(mx.float32), group_size=_GGUF_GROUP, bits=bits)
            parts = {"weight": q, "scales": scales.astype(target), "biases": biases.astype(target),
                     **({"bias": parts["bias"].astype(target)} if "bias" in parts else {})}
            quant[path] = (bits, _GGUF_GROUP)
            actions[f"{gtype} requantized to {bits}-bit g{_GGUF_GROUP}"] += 1
        else:
            parts = {leaf: v.astype(target) for leaf, v in parts.items()}
            actions[f"{gtype} {'as' if gtype in _FLOAT_TYPES else 'dequantized to'} {dtype}"] += 1
        for leaf, v in parts.items():
            if (mapped := mlx_name(f"{base}.{leaf}")) is not None:
                weights[mapped] = v
        mx.eval(list(parts.values()))
        report("converting tensors", 0.15 + 0.7 * (i + 1) / len(groups))

    if quant:
        common = Counter(quant.values()).most_common(1)[0][0]
        qconfig: dict[str, Any] = {"group_size": common[1], "bits": common[0], "mode": "affine"}
        for path, (bits, gs) in sorted(quant.items()):
            if (bits, gs) != common:
                qconfig[path] = {"group_size": gs, "bits": bits, "mode": "affine"}
        config["quantization"] = qconfig
        config["quantization_config"] = dict(qconfig)
    config["torch_dtype"] = dtype
    config["temper"] = {"imported_from": file.name, "source": str(file.resolve()),
                        "gguf_file_type": plain(meta.get("general.file_type")),
                        "gguf_read_by": "mlx" if native else "gguf", "tensors": dict(sorted(actions.items()))}

    report("writing", 0.9)
    with atomic.folder(dest, overwrite=overwrite) as tmp:
        mx.save_safetensors(str(tmp / "model.safetensors"), weights, metadata={"format": "mlx"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        write_tokenizer(tmp, meta)
        step()
    report("done", 1.0)
    return dest
