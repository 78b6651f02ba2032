"""Write a plan as a standard MLX model folder that plain `mlx_lm.load` reads.

- Weights: quantized with `nn.quantize` and a class predicate that returns each path's planned
  (bits, group_size, mode) — every argument by keyword, nothing positional (mlx-lm 0.32 moved them).
- config.json: `quantization` and `quantization_config` hold a global default (the most common choice)
  plus an explicit entry for EVERY planned path: a dict, or `false` for tensors kept in float.
- Dtype: we quantize in the dtype the source weights are stored in (bf16 weights -> bf16 scales and
  biases). A float32 source gives float32 scales, as its plan priced them (`plan.float_bytes` = 4); pass
  `dtype="bfloat16"` to cast first (the plan must then be made with float_bytes=2). A plan priced for
  another dtype than the one written is refused, so the real size always matches the plan.
- Vision / audio towers and anything the plan does not name stay as they are (float).
- Tokenizer files and chat template copied; a model card (README.md) and the plan (temper-plan.json).
- Atomic: everything goes into a temporary sibling folder renamed into place at the end; on any failure
  nothing is left behind. An existing output folder is refused unless `force`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import atomic
from ..accel.release import bounded_cache
from ..errors import QuantError
from .gptq import Rounding
from .inventory import is_float_only
from .output import check_output
from .passthrough import copy_towers, tower_bytes
from .plan import PLAN_FILE, Plan
from .work import Tally, gptq_tensor, rounded_tensor

DTYPES = {"float32": 4, "float16": 2, "bfloat16": 2}
_COPY_SUFFIXES = {".json", ".jinja", ".model", ".tiktoken", ".txt", ".jsonl", ".py"}
_NO_COPY = {"config.json", "model.safetensors.index.json", PLAN_FILE}

CACHE_ENV = "TEMPER_WRITE_CACHE_MB"    # MLX's buffer cache while tensors are rounded; "0": MLX's own limit
CACHE_MB = 2048    # a wide H's blocked factor frees shrinking arrays MLX never reuses: unbounded, they filled an
#                    80 GB card while Llama-3-8B was written (docs/benchmarks/quantize_gpu.md, session 12)
Progress = Callable[..., None]       # (phase, done, total[, message[, work units: work.py]])


@dataclass
class WriteResult:
    path: Path
    files: list[str]
    source_bytes: int          # tensor bytes of the source model
    written_bytes: int         # tensor bytes of the written model


def source_tensor_bytes(folder: Path) -> int:
    from ..library.safetensors_header import read_header

    return sum(info.nbytes for f in sorted(Path(folder).glob("*.safetensors"))
               for info in read_header(f)[0].values())


def write_quantized(
    source: Path, plan: Plan, out: Path, *, force: bool = False, dtype: str | None = None,
    card: dict[str, Any] | None = None, progress: Progress | None = None,
    before_commit: Callable[[Path], None] | None = None,
    awq_chunks: Sequence[Sequence[int]] | None = None,
    rounding: Rounding | None = None, calibration: Sequence[Sequence[int]] | None = None,
) -> WriteResult:
    """Quantize `source` as `plan` says and write it to `out` (atomically). Call on the engine thread.

    `before_commit(tmp)` runs on the finished temporary folder before it is renamed into place (verify
    goes there): if it raises, nothing is left behind. `awq_chunks`: calibration token chunks for AWQ-style
    pre-scaling (core/quant/awq.py), folded into the norms before quantizing. `rounding`: how tensors are
    rounded (core/quant/gptq.py; default round-to-nearest, as `mx.quantize`); GPTQ needs `calibration`
    (token chunks; `awq_chunks` serve when it is not given)."""
    from mlx_lm.utils import save_config, save_model

    from ..engine.loader import open_model

    source, out = Path(source), Path(out)
    check_output(out, source, force=force)
    raw_config = json.loads((source / "config.json").read_text())
    if "quantization" in raw_config or "quantization_config" in raw_config:
        from .source import already_quantized

        raise already_quantized(source)
    say = progress or (lambda *_: None)

    say("load", 0, 1)
    model, _ = open_model(source, lazy=True)
    if dtype is not None:
        if dtype not in DTYPES:
            raise QuantError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype}")
        from .inventory import cast_model

        cast_model(model, dtype)
        raw_config["torch_dtype"] = dtype
    from .inventory import float_bytes_of

    fb = float_bytes_of(model)
    if fb != plan.float_bytes:
        raise QuantError(f"the plan prices scales at {plan.float_bytes} bytes but the weights written are "
                         f"{fb}-byte floats: make the plan for this dtype (or pass the matching dtype)")

    card = dict(card or {})
    if awq_chunks is not None:
        from .awq import apply_awq

        say("awq", 0, 1)
        alphas = apply_awq(model, str(raw_config.get("model_type", "")), plan, awq_chunks)
        scaled = [a for a in alphas.values() if a > 0]
        card["awq"] = (f"AWQ-style pre-scaling folded into the norms: {len(scaled)} of {len(alphas)} groups "
                       f"scaled (α ∈ {{{', '.join(sorted({f'{a:g}' for a in alphas.values()}))}}}), "
                       f"on {len(awq_chunks)} calibration chunks")
    wanted = plan.by_path()
    modules = dict(model.named_modules())
    missing = [p for p in wanted if p not in modules or not hasattr(modules[p], "to_quantized")]
    if missing:
        raise QuantError(f"the plan names {missing[0]}, which this model has no quantizable module for: "
                         "was the plan made for another model?")

    def predicate(path: str, module: Any) -> bool | dict[str, Any]:
        entry = wanted.get(path)
        if entry is None or entry.candidate is None or is_float_only(path):
            return False
        c = entry.candidate
        if not c.fits(tuple(module.weight.shape)):
            raise QuantError(f"{path}: {c.key} does not fit its shape {tuple(module.weight.shape)}")
        return {"group_size": c.group_size, "bits": c.bits, "mode": c.mode}

    rounding = rounding or Rounding(gptq=False, clip=False)
    card["rounding"] = rounding.describe()
    with bounded_cache(write_cache_bytes()):       # None: unbounded
        skipped = quantize_tensors(model, predicate, rounding, plan, list(calibration or awq_chunks or []), say)
    if skipped:
        card["rounding"] = f"round-to-nearest{' with clip search' if rounding.clip else ''} ({skipped})"
    quant = plan.quantization_config()
    config = {k: v for k, v in raw_config.items()}
    config["quantization"] = quant
    config["quantization_config"] = dict(quant)

    check_room(out, plan, extra=sum(f.stat().st_size for f in tokenizer_files(source)))
    try:
        with atomic.folder(out, overwrite=force) as tmp:
            say("write", 0, 1)
            save_model(tmp, model, donate_model=True)
            towers = copy_towers(source, tmp)  # a VLM's vision/audio towers, unchanged (passthrough.py)
            if towers.names:
                card["towers"] = towers.describe()
            save_config(config, config_path=tmp / "config.json", keep_vision_config=bool(towers.names))
            copy_tokenizer_files(source, tmp)
            plan.save(tmp / PLAN_FILE)
            src_bytes = source_tensor_bytes(source)
            written = source_tensor_bytes(tmp)
            (tmp / "README.md").write_text(model_card(plan, source, written - towers.nbytes,
                                                      src_bytes - tower_bytes(source), card))
            files = sorted(p.name for p in tmp.iterdir())
            say("write", 1, 1)
            if before_commit is not None:
                before_commit(tmp)
    except FileExistsError as exc:
        raise QuantError(f"{out} already exists: choose another output folder or pass --force") from exc
    except OSError as exc:
        raise QuantError(f"cannot write {out}: {exc.strerror or exc} (nothing was left behind)") from exc
    except RuntimeError as exc:  # MLX's save: "[save_safetensors] Unable to write N bytes" on a full disk
        if "write" not in str(exc).lower() and "open" not in str(exc).lower():
            raise
        raise QuantError(f"cannot write {out}: {' '.join(str(exc).split())[:120]} (disk full or not "
                         "writable? nothing was left behind)") from exc
    return WriteResult(path=out, files=files, source_bytes=src_bytes, written_bytes=written)


def write_cache_bytes() -> int | None:
    """The buffer cache's bound while tensors are rounded (`TEMPER_WRITE_CACHE_MB`); None: MLX's own limit."""
    raw = os.environ.get(CACHE_ENV, "").strip()
    mb = int(raw) if raw.isdigit() else CACHE_MB
    return mb << 20 if mb else None


def quantize_tensors(model: Any, predicate: Callable[[str, Any], Any], rounding: Rounding, plan: Plan,
                     chunks: list[list[int]], say: Progress) -> str:
    """Replace every planned module by its quantized form, one tensor at a time (progress per tensor):
    GPTQ for the blocks' affine Linears when asked, then round-to-nearest (clip-searched when asked) for
    the rest — embeddings, non-affine modes, modules GPTQ cannot see. Returns why GPTQ was skipped, if it
    was (a model whose blocks it cannot walk: nothing was changed, and round-to-nearest does it all)."""
    import mlx.core as mx
    from mlx.utils import tree_unflatten

    todo = [(p, m) for p, m in model.named_modules() if hasattr(m, "to_quantized") and predicate(p, m)]
    total, done = len(todo), 0
    tokens = sum(len(c) for c in chunks or [])
    costs = {p: _cost(m, predicate(p, m), rounding, tokens) for p, m in todo}   # the ETA's weights (work.py)
    tally = Tally(sum(costs.values()))

    def tick(path: str) -> None:
        nonlocal done
        done += 1
        say("quantize", done, total, path, tally.add(costs.get(path, 0.0)))

    say("quantize", 0, total, rounding.describe(), tally.add(0.0))
    skipped = ""
    if rounding.gptq:
        if not chunks:
            raise QuantError("GPTQ rounding needs calibration text: pass calibration chunks or turn it off")
        from .gptq import round_with_gptq

        try:
            round_with_gptq(model, plan, chunks, rounding, on_tensor=tick)
        except QuantError as exc:
            if done:
                raise
            skipped = f"GPTQ skipped: {exc}"
            say("quantize", 0, total, skipped, tally.add(0.0))
    rest = [(p, m) for p, m in model.named_modules() if hasattr(m, "to_quantized") and predicate(p, m)]
    for path, module in rest:
        cfg = predicate(path, module)
        assert isinstance(cfg, dict)
        q = module.to_quantized(**cfg)
        if rounding.clip and cfg["mode"] == "affine":     # replaces to_quantized's lazy arrays before they run
            from .rounding import clip_rounded

            q.weight, q.scales, q.biases = clip_rounded(module.weight, cfg["bits"], cfg["group_size"])
        mx.eval(q.parameters())
        model.update_modules(tree_unflatten([(path, q)]))
        tick(path)
    return skipped


def _cost(module: Any, cfg: Any, rounding: Rounding, tokens: int) -> float:
    """A tensor's work units in the quantize phase: GPTQ for the affine Linears when asked, else rounding."""
    import mlx.nn as nn

    rows, cols = module.weight.shape[0], module.weight.shape[-1]
    affine = isinstance(cfg, dict) and cfg.get("mode") == "affine"
    if rounding.gptq and tokens and affine and isinstance(module, nn.Linear):
        return gptq_tensor(rows, cols, tokens)
    return rounded_tensor(rows, cols, clip=bool(rounding.clip and affine))


def check_room(out: Path, plan: Plan, *, extra: int = 0) -> None:
    """Refuse before writing: a folder this process may not write in, or a disk without room for the
    plan's bytes, the `extra` bytes copied beside them (tokenizer files), 1% and 1 MB (headers, config, card)."""
    from ..partials import clean

    parent = Path(out).parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise QuantError(f"cannot write {out}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise QuantError(f"cannot write {out}: {existing} is not writable")
    if parent.is_dir():
        clean(parent)                      # half-written folders of killed earlier runs
    need = int(plan.size_bytes * 1.01) + extra + 2**20
    free = shutil.disk_usage(existing).free
    if free < need:
        raise QuantError(f"cannot write {out}: it needs about {need / 1e6:.1f} MB and {existing} has "
                         f"{free / 1e6:.1f} MB free")


def tokenizer_files(source: Path) -> list[Path]:
    """Tokenizer, chat template, generation and processor configs: every small text file mlx-lm reads."""
    return [f for f in sorted(Path(source).iterdir())
            if f.is_file() and f.suffix in _COPY_SUFFIXES and f.name not in _NO_COPY]


def copy_tokenizer_files(source: Path, dest: Path) -> list[str]:
    """Copy `tokenizer_files(source)` into `dest`."""
    copied = []
    for f in tokenizer_files(source):
        shutil.copy2(f, dest / f.name)
        copied.append(f.name)
    if not any(n.startswith("tokenizer") or n in ("vocab.json", "tokenizer.model") for n in copied):
        raise QuantError(f"{source.name} has no tokenizer files to copy (tokenizer.json / tokenizer.model)")
    return copied


def model_card(plan: Plan, source: Path, written_bytes: int, source_bytes: int, extra: dict[str, Any]) -> str:
    """README.md for the written folder: what it is, how it was made, what it weighs, how good it is."""
    bpw = written_bytes * 8 / max(plan.params, 1)
    rows = "\n".join(f"| {label} | {n} | {p:,} | {100 * p / max(plan.params, 1):.1f}% |"
                     for label, (n, p) in plan.width_counts().items())
    dkl = "" if plan.predicted_dkl is None else f"- Predicted ΔKL (sum over tensors): {plan.predicted_dkl:.4g}\n"
    quality = extra.get("quality")
    quality_md = "Not measured." if not quality else quality
    notes = "".join(f"- {n}\n" for n in plan.notes)
    return f"""---
library_name: mlx
base_model: {extra.get("base_model", source.name)}
tags: [mlx, quantized, temper]
---
# {extra.get("name", source.name + "-" + plan.method)}

Quantized with temper from `{source.name}`; loads with plain `mlx_lm.load`.

- Method: `{plan.method}`{"" if plan.budget_bpw is None else f" under a hard cap of {plan.budget_bpw:.3f} bpw"}
- Effective bits per weight (all tensor bytes × 8 / parameters): **{bpw:.3f}**
- Size: {written_bytes / 1e6:.2f} MB of tensors, {100 * written_bytes / max(source_bytes, 1):.1f}% of the
  unquantized {source_bytes / 1e6:.2f} MB
- Scales/biases dtype: {plan.float_bytes * 8}-bit float
- {extra.get("awq", "AWQ pre-scaling: not applied")}
- Rounding: {extra.get("rounding", "round-to-nearest")}
{"" if "towers" not in extra else "- Language model quantized; vision/audio towers and projectors copied in float: " + extra["towers"] + chr(10)}{dkl}- Calibration: {extra.get("calibration", plan.meta.get("calibration_hash") or "none (no scores used)")}
{notes}
## Tensors by width

| width | tensors | weights | share |
|---|---:|---:|---:|
{rows}

The full per-tensor table is in `{PLAN_FILE}`.

## Measured quality

{quality_md}
"""
