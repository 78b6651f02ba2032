"""The sensitivity pass: for every quantizable tensor and candidate, the predicted ΔKL of the model.

Modes:
- exact: quantize→dequantize ONE tensor in place, run the calibration forward, KL(reference ‖ model)
  of next-token distributions averaged over every calibration token, restore; tensors × candidates
  forward passes (blocks before the tensor's block are replayed from the reference pass, see reference.py).
- fast: a Fisher-information estimate of the same quantity for all tensors from one forward+backward
  per calibration chunk (estimate.py).
- hybrid (default): the fast estimate for all, then the exact measure for the top `fraction` of tensors
  by estimated damage at the cheapest candidate (where a wrong estimate costs most); the other tensors'
  estimates are scaled per candidate by the median exact/estimate ratio of the measured ones.

The model runs in fp32 (weights upcast from their stored dtype; fake quantization rounds in the stored
dtype, as the written file will). Results go to data_dir()/sensitivity/<model>-<calibration>-<mode>.json
(or `out`), saved atomically after every tensor: a killed or cancelled pass resumes from the last
finished tensor, and a finished one is reused (no forward pass) when the same model, calibration and a
subset of its candidates are asked again (a finished exact table also answers hybrid and fast
requests). Events: LayerScored per tensor (and Progress for the Fisher pass); ctx.check() between
candidates and between calibration batches, so a cancel lands within one forward pass.

Memory: models run whole in memory, in fp32 (about 2x a bf16 model, plus the reference log-probs and
replay buffers, each capped at 1 GiB). A model whose fp32 weights do not fit the memory available
(psutil), or any model with streamed=True, is measured by the streamed exact pass (streamed.py: one
block read from disk at a time, same exact ΔKL, blocks² block reads); streaming always measures
exactly (a Fisher estimate needs the whole model for its backward pass), so such a run is saved as
an exact table. Peak MLX memory and process RSS are recorded in the table's meta.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import paths
from ..engine.events import Progress
from ..errors import QuantError
from .calibration import TokenSet, calibration_set
from .candidates import Candidate
from .scores import SensitivityTable
from .sensitivity_run import MODES, LayerScored, SensitivityRun
from .tensors import model_hash

__all__ = ["MODES", "LayerScored", "cache_file", "reuse_key", "run_sensitivity"]


def cache_file(mhash: str, chash: str, mode: str, key: dict[str, Any] | None = None) -> Path:
    """Where a table is saved by default: one file per model, calibration, mode and reuse key."""
    tag = ""
    if key:
        tag = "-" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
    return paths.data_dir() / "sensitivity" / f"{mhash[:16]}-{chash[:16]}-{mode}{tag}.json"


def reuse_key(mode: str, cands: Sequence[Candidate], calib: TokenSet, fraction: float, seed: int) -> dict[str, Any]:
    """Every parameter that changes a table's numbers. Exact scores depend on the tokens only (each
    candidate's score is its own, so a table with more candidates answers fewer); the estimate also on
    the label-sampling seed; hybrid also on the fraction measured exactly and on the candidate set (the
    cheapest candidate picks the tensors measured exactly, and corrections are per candidate)."""
    key: dict[str, Any] = {"mode": mode, "calibration": calib.hash, "samples": int(calib.chunks.shape[0]),
                           "seq_len": int(calib.chunks.shape[1])}
    if mode in ("fast", "hybrid"):
        key["seed"] = int(seed)
    if mode == "hybrid":
        key["fraction"] = float(fraction)
        key["candidates"] = sorted(c.key for c in cands)
    return key


def run_sensitivity(
    ctx: Any,
    model_path: str | Path,
    candidates: Sequence[Candidate | str],
    calibration: TokenSet | str | Path | None = None,
    *,
    mode: str = "auto",
    out: Path | None = None,
    samples: int = 16,
    seq_len: int = 256,
    fraction: float = 0.25,
    seed: int = 0,
    replay: bool = True,
    streamed: bool | None = None,
) -> SensitivityTable:
    """Measure (or reuse, or resume) the sensitivity table. Runs on the engine thread.

    mode: fast | hybrid | exact, or auto (core/quant/mode.py picks by backend and size, and says why).
    calibration: a TokenSet, a user text file, or None for the built-in mix (samples x seq_len).
    out: the JSON file to save/resume/reuse (default data_dir()/sensitivity/<model>-<calib>-<mode>-<key>.json).
    replay=False recomputes every block on every exact pass (for checking the replay shortcut).
    streamed: True streams blocks from disk (exact measure); None streams only when the planned peak
    memory of the in-memory pass exceeds what is available (a fast pass that does not fit is refused)."""
    from ..engine.eta import EtaContext
    from .fisher_groups import MAX_PARTS
    from .mode import FIT_FRACTION, ModelSize, available_bytes, choose_mode, fisher_sequences, peak_bytes

    if not isinstance(ctx, EtaContext):      # alone (`temper sensitivity`, Layers' measure): progress gets its ETA
        ctx = EtaContext(ctx)
    if mode not in (*MODES, "auto"):
        raise QuantError(f"unknown sensitivity mode {mode!r} (choose from auto, {', '.join(MODES)})")
    if not 0 < fraction <= 1:
        raise QuantError(f"hybrid fraction must be in (0, 1], not {fraction}")
    cands = sorted({c if isinstance(c, Candidate) else Candidate.from_key(c) for c in candidates},
                   key=lambda c: (c.bits_per_weight(), c.key))
    if not cands:
        raise QuantError("no quantization candidates: choose at least one width and mode")
    from ..engine.loader import read_config, resolve

    path = resolve(model_path)
    config = read_config(path)
    if config.get("quantization") or config.get("quantization_config"):
        from .source import already_quantized

        raise already_quantized(path)
    size = ModelSize.of(path)
    reason = "asked for"
    if mode == "auto":
        choice = choose_mode(size)
        mode, reason = choice.mode, choice.reason
    need, avail = peak_bytes(size, mode, seq_len=seq_len, tokens=samples * seq_len), available_bytes()
    if streamed is None:
        if mode == "fast":      # its statistics may be made in parts, one pass each (fisher_groups.py)
            need = peak_bytes(size, mode, seq_len=seq_len, tokens=samples * seq_len, parts=MAX_PARTS)
        streamed = need > FIT_FRACTION * avail
        if streamed and mode == "fast":
            raise QuantError(f"the fast estimate of {path.name} needs about {need / 1e9:.1f} GB even in "
                             f"{MAX_PARTS} parts and {avail / 1e9:.1f} GB is available: free memory, or measure "
                             "it streamed (--streamed: exact, one block in memory at a time, much slower)")
        if streamed:
            reason += (f"; streamed from disk: the in-memory {mode} pass needs about {need / 1e9:.1f} GB, "
                       f"{avail / 1e9:.1f} GB available")
    if streamed:
        mode = "exact"
        need = 0
    if reason != "asked for":     # say which pass "auto" (or the memory guard) picked, and why
        ctx.emit(Progress(ctx.job_id, "sensitivity", 0, None, f"{mode} pass ({reason})"))
    mhash = model_hash(path)
    calib = _calibration(path, calibration, samples, seq_len)
    if mode == "fast":
        calib, why = _spread(calib, *fisher_sequences(calib.samples))
        if why:
            ctx.emit(Progress(ctx.job_id, "sensitivity", 0, None, f"fast pass on {why}"))
    key = reuse_key(mode, cands, calib, fraction, seed)
    target = Path(out) if out is not None else cache_file(mhash, calib.hash, mode, key)
    if out is None and mode != "exact":   # a finished exact table answers a less exact request
        other = reuse_key("exact", cands, calib, fraction, seed)
        file = cache_file(mhash, calib.hash, "exact", other)
        saved = _previous(file, mhash, calib.hash, other)
        run = SensitivityRun(ctx, path, cands, calib, mode, fraction, seed, file, saved)
        if saved is not None and run._complete(saved):
            return run.go()
    table = _previous(target, mhash, calib.hash, key)
    run = SensitivityRun(ctx, path, cands, calib, mode, fraction, seed, target, table)
    run.replay, run.mhash, run.streamed = replay, mhash, bool(streamed)
    run.key, run.plan = key, {"mode_reason": reason, "planned_peak_bytes": int(need),
                              "available_bytes": int(avail)}
    return run.go()


def _calibration(path: Path, calibration: TokenSet | str | Path | None, samples: int,
                 seq_len: int) -> TokenSet:
    if isinstance(calibration, TokenSet):
        return calibration
    from mlx_lm.utils import load_tokenizer

    tokenizer = load_tokenizer(path)
    return calibration_set(tokenizer, samples=samples, seq_len=seq_len, source=calibration)


def _spread(calib: TokenSet, n: int, why: str) -> tuple[TokenSet, str]:
    """`n` of the set's chunks, evenly spaced (the set's domains are not mixed chunk by chunk)."""
    if n >= calib.samples:
        return calib, ""
    import dataclasses

    import numpy as np

    pick = np.unique(np.linspace(0, calib.samples - 1, n).round().astype(int))
    return dataclasses.replace(calib, chunks=calib.chunks[pick],
                               notes=[*calib.notes, f"fast pass: chunks {pick.tolist()} of {calib.samples}"]), why


def _previous(target: Path, mhash: str, chash: str, key: dict[str, Any]) -> SensitivityTable | None:
    if not target.is_file():
        return None
    try:
        table = SensitivityTable.load(target)
    except QuantError:
        return None          # unreadable or older schema: measure again (the file is replaced)
    if table.model_hash != mhash or table.calibration_hash != chash:
        return None
    saved = table.meta.get("key")
    if saved is not None and saved != key and not (saved.get("mode") == "exact" and _answers(saved, key)):
        return None          # measured with other settings: neither reused nor resumed
    return table


def _answers(exact: dict[str, Any], key: dict[str, Any]) -> bool:
    """An exact table answers any request on the same tokens."""
    return all(exact.get(k) == key.get(k) for k in ("calibration", "samples", "seq_len"))
