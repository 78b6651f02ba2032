"""The sensitivity pass: for every quantizable tensor and candidate, the predicted ΔKL of the model.

Modes:
- exact: quantize→dequantize ONE tensor in place, run the calibration forward, KL(reference ‖ model)
  of next-token distributions averaged over every calibration token, restore; tensors × candidates
  forward passes (blocks before the tensor's block are replayed from the reference pass, see kl.py).
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
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .. import paths
from ..engine.events import Event, Progress
from ..errors import QuantError
from . import estimate, kl
from .calibration import TokenSet, calibration_set
from .candidates import Candidate
from .scores import SensitivityTable, TensorScores
from .streamed import StreamedScorer
from .tensors import QTensor, model_hash, quantizable

MODES = ("fast", "hybrid", "exact")     # from least to most exact


@dataclass(frozen=True)
class LayerScored(Event):
    """One tensor's scores are in (the live Layers view fills a row per event)."""

    path: str
    scores: dict[str, float] = field(default_factory=dict)
    done: int = 0
    total: int = 0
    method: str = "exact"            # "exact" | "estimate"


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
    from .mode import FIT_FRACTION, ModelSize, available_bytes, choose_mode, peak_bytes

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
        streamed = need > FIT_FRACTION * avail
        if streamed and mode == "fast":
            raise QuantError(f"the fast estimate of {path.name} needs about {need / 1e9:.1f} GB and "
                             f"{avail / 1e9:.1f} GB is available: free memory, or measure it streamed "
                             "(--streamed: exact, one block in memory at a time, much slower)")
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


class Scorer(Protocol):
    """Fills, saves and returns a run's table (the run holds the request, the table and the bookkeeping)."""

    def score(self, run: SensitivityRun) -> SensitivityTable: ...


class InMemoryScorer:
    """The whole model in memory: the Fisher estimate and/or the exact KL with block replay."""

    def score(self, run: SensitivityRun) -> SensitivityTable:
        t0 = time.perf_counter()
        model, storage = run.load(fisher_only=run.mode == "fast")
        tensors = quantizable(model)
        run.times["load"] = time.perf_counter() - t0
        run.storage = storage
        table = run.init_table(tensors, storage)
        if run.mode in ("fast", "hybrid"):
            run.estimates(model, tensors, table)
        if run.mode in ("exact", "hybrid"):
            run.exact(model, tensors, table)
        if run.mode == "hybrid":
            run.correct(table)
        table.meta["complete"] = True
        run.finish_meta(table)
        table.save(run.target)
        return table


class SensitivityRun:
    def __init__(self, ctx: Any, path: Path, cands: list[Candidate], calib: TokenSet, mode: str,
                 fraction: float, seed: int, target: Path, table: SensitivityTable | None):
        self.ctx, self.path, self.cands, self.calib = ctx, path, cands, calib
        self.mode, self.fraction, self.seed, self.target = mode, fraction, seed, target
        self.table = table
        self.keys = [c.key for c in cands]
        self.times: dict[str, float] = {}
        self.reference: kl.Reference | None = None
        self.replay, self.mhash, self.streamed = True, "", False
        self.key: dict[str, Any] = {}
        self.plan: dict[str, Any] = {}
        self.block_loads = 0

    # -- orchestration ------------------------------------------------------------------------------
    def go(self) -> SensitivityTable:
        if self.table is not None and self._complete(self.table):
            self._emit_all(self.table)
            return self._result(self.table, reused=True)
        import mlx.core as mx

        mx.reset_peak_memory()
        self.start_passes = kl.PASSES.n
        self.baseline = int(mx.get_active_memory())    # arrays alive before this run (other models...)
        scorer: Scorer = StreamedScorer() if self.streamed else InMemoryScorer()
        return self._result(scorer.score(self), reused=False)

    def load(self, fisher_only: bool = False) -> tuple[Any, Any]:
        """The model, and the dtype its weights are stored in. Exact passes run it in fp32; the Fisher
        pass alone keeps embeddings in the stored dtype (they are only looked up, in slices) and the
        rest in fp32 on a CPU (fast BLAS) or stored on an accelerator (no 2x copy of a large model)."""
        import mlx.core as mx
        from mlx.utils import tree_flatten, tree_map_with_path

        from ..accel.compute import on_cpu_backend
        from ..engine.loader import load

        lm = load(self.path, compute="native")   # the stored dtype: fake quantization rounds in it, as the file will
        tensors = quantizable(lm.model)
        storage = tensors[0].module["weight"].dtype
        quantized = {t.path + ".weight" for t in tensors}
        fixed = [v for n, v in tree_flatten(lm.model.parameters()) if n not in quantized]
        self.fixed = (sum(v.size * v.dtype.size * 8 for v in fixed), sum(v.size for v in fixed))
        if not fisher_only:
            lm.model.set_dtype(mx.float32)
        elif on_cpu_backend():
            embeds = {t.path + ".weight" for t in tensors if hasattr(t.module, "as_linear")}
            lm.model.update(tree_map_with_path(
                lambda k, v: v.astype(mx.float32) if k not in embeds and mx.issubdtype(v.dtype, mx.floating)
                else v, lm.model.parameters()))
        lm.model.eval()
        self.vocab = int(lm.config.get("vocab_size") or lm.config.get("text_config", {}).get("vocab_size", 0))
        return lm.model, storage

    def init_table(self, tensors: list[QTensor], storage: Any) -> SensitivityTable:
        table = self.table
        keys = sorted(set(self.keys) | set(table.candidates if table else []),
                      key=lambda k: (Candidate.from_key(k).bits_per_weight(), k))
        old = table.by_path() if table else {}
        rows = []
        for t in tensors:
            row = old.get(t.path) or TensorScores(path=t.path, shape=t.shape, params=t.params, kind=t.kind,
                                                  layer=t.layer)
            row.skipped = sorted(set(row.skipped) | {c.key for c in self.cands if not c.fits(t.shape)})
            rows.append(row)
        float_bytes = _float_bytes(storage)
        meta = dict(table.meta) if table else {}
        meta.update({"mode": self.mode, "calibration": self.calib.meta(), "complete": False, "key": self.key,
                     **self.plan})
        self.table = SensitivityTable(
            model=str(self.path), model_hash=self.mhash,
            calibration_hash=self.calib.hash, candidates=keys, float_bytes=float_bytes,
            fixed_bits=self.fixed[0], fixed_params=self.fixed[1], tensors=rows, meta=meta)
        return self.table

    # -- phases -------------------------------------------------------------------------------------
    def estimates(self, model: Any, tensors: list[QTensor], table: SensitivityTable) -> None:
        ests: dict[str, dict[str, float]] = table.meta.setdefault("estimates", {})
        todo = [t for t in tensors if any(k not in ests.get(t.path, {}) for k in self._fitting(t))]
        if not todo:
            return
        t0 = time.perf_counter()
        scored = estimate.fisher_estimates(model, self.calib.chunks, tensors, self.cands,
                                           storage_dtype=self.storage, seed=self.seed, check=self.ctx.check,
                                           progress=self._progress("fisher"))
        by_path = table.by_path()
        for i, t in enumerate(tensors):
            self.ctx.check()
            scores = scored[t.path]
            ests.setdefault(t.path, {}).update(scores)
            if self.mode == "fast":   # exact scores already measured (an earlier run) are kept
                row = by_path[t.path]
                new = {k: v for k, v in scores.items() if row.methods.get(k) != "exact"}
                row.scores.update(new)
                row.methods.update({k: "estimate" for k in new})
            self.ctx.emit(LayerScored(self.ctx.job_id, t.path, dict(scores), i + 1, len(tensors), "estimate"))
        self.times["estimate"] = time.perf_counter() - t0
        table.save(self.target)

    def _exact_targets(self, tensors: list[QTensor], table: SensitivityTable) -> list[QTensor]:
        if self.mode == "exact":
            return tensors
        chosen = table.meta.get("exact_paths")
        if chosen is None:
            ests = table.meta["estimates"]

            def damage(t: QTensor) -> float:
                fitting = self._fitting(t)
                return ests[t.path].get(fitting[0], 0.0) if fitting else -1.0

            n = max(1, math.ceil(self.fraction * len(tensors)))
            chosen = [t.path for t in sorted(tensors, key=damage, reverse=True)[:n]]
            table.meta["exact_paths"] = chosen
        wanted = set(chosen)
        return [t for t in tensors if t.path in wanted]

    def exact(self, model: Any, tensors: list[QTensor], table: SensitivityTable) -> None:
        from .tensors import fake_quantize

        targets = self._exact_targets(tensors, table)
        by_path = table.by_path()
        t0 = time.perf_counter()
        for i, t in enumerate(targets):
            row = by_path[t.path]
            todo = [c for c in self.cands if c.fits(t.shape) and row.methods.get(c.key) != "exact"]
            if not todo:   # finished in an earlier (interrupted) run: show it, measure nothing
                self.ctx.emit(LayerScored(self.ctx.job_id, t.path, dict(row.scores), i + 1, len(targets)))
                continue
            ref = self._reference(model)
            original = t.module["weight"]
            scores: dict[str, float] = {}
            try:
                for c in todo:
                    self.ctx.check()
                    t.module["weight"] = fake_quantize(original, c, self.storage, dtype=original.dtype)
                    scores[c.key] = ref.kl(model, check=self.ctx.check, start_layer=_first_block(t, ref))
            finally:
                t.module["weight"] = original
            row.scores.update(scores)
            row.methods.update({k: "exact" for k in scores})
            table.save(self.target)           # resumable: this tensor is done
            self.ctx.emit(LayerScored(self.ctx.job_id, t.path, dict(row.scores), i + 1, len(targets), "exact"))
        self.times["exact"] = self.times.get("exact", 0.0) + time.perf_counter() - t0

    def correct(self, table: SensitivityTable) -> None:
        """Scale the unmeasured tensors' estimates by the median exact/estimate ratio per candidate."""
        ests = table.meta["estimates"]
        measured = set(table.meta.get("exact_paths", []))
        ratios: dict[str, float] = {}
        for key in table.candidates:
            r = [row.scores[key] / ests[row.path][key] for row in table.tensors
                 if row.path in measured and key in row.scores and ests[row.path].get(key, 0) > 0]
            ratios[key] = float(sorted(r)[len(r) // 2]) if r else 1.0
        table.meta["correction"] = ratios
        n = len(table.tensors)
        for i, row in enumerate(table.tensors):
            if row.path in measured:
                continue
            for key, value in ests.get(row.path, {}).items():
                row.scores[key] = value * ratios.get(key, 1.0)
                row.methods[key] = "estimate"
            self.ctx.emit(LayerScored(self.ctx.job_id, row.path, dict(row.scores), i + 1, n, "estimate"))

    def _progress(self, phase: str) -> Any:
        def report(done: int, total: int, message: str) -> None:
            self.ctx.emit(Progress(self.ctx.job_id, "sensitivity", done, total, message, {"step": phase}))
        return report

    def _reference(self, model: Any) -> kl.Reference:
        if self.reference is None:
            t0 = time.perf_counter()
            self.reference = kl.Reference(model, self.calib.chunks, vocab=self.vocab, check=self.ctx.check,
                                          replay_bytes=(1 << 30) if self.replay else 0)
            self.times["reference"] = time.perf_counter() - t0
            if self.reference.replay_note:
                self.ctx.emit(Progress(self.ctx.job_id, "sensitivity", 0, None, self.reference.replay_note,
                                       {"step": "reference", "warning": True}))
        return self.reference

    # -- bookkeeping --------------------------------------------------------------------------------
    def _fitting(self, t: QTensor) -> list[str]:
        return [c.key for c in self.cands if c.fits(t.shape)]

    def _complete(self, table: SensitivityTable) -> bool:
        saved_mode = table.meta.get("mode")
        if not table.meta.get("complete") or saved_mode not in MODES or \
                MODES.index(saved_mode) < MODES.index(self.mode):
            return False
        for row in table.tensors:
            for c in self.cands:
                if c.key not in row.scores and not (c.key in row.skipped or not c.fits(row.shape)):
                    return False
        return True

    def finish_meta(self, table: SensitivityTable) -> None:
        import mlx.core as mx
        import psutil

        from ..rss import peak_rss_bytes

        table.meta.update({
            "seconds": {k: round(v, 3) for k, v in self.times.items()},
            "forward_passes": kl.PASSES.n - self.start_passes,
            "reference": self.reference.kind if self.reference else None,
            "replay": bool(self.reference and self.reference.replay),
            "replay_note": self.reference.replay_note if self.reference else "",
            "peak_mlx_bytes": int(mx.get_peak_memory()),
            "baseline_mlx_bytes": getattr(self, "baseline", 0),
            "rss_bytes": int(psutil.Process().memory_info().rss),
            "peak_rss_bytes": peak_rss_bytes(),
            "streamed": False,
            "mlx": mx.__version__,
        })

    def _result(self, table: SensitivityTable, *, reused: bool) -> SensitivityTable:
        """The table restricted to the asked candidates (the saved file keeps everything measured)."""
        keys = set(self.keys)
        rows = [TensorScores(path=r.path, shape=tuple(r.shape), params=r.params, kind=r.kind, layer=r.layer,
                             scores={k: v for k, v in r.scores.items() if k in keys},
                             methods={k: v for k, v in r.methods.items() if k in keys},
                             skipped=[k for k in r.skipped if k in keys]) for r in table.tensors]
        meta = dict(table.meta)
        meta.update({"reused": reused, "file": str(self.target)})
        if reused:
            meta["forward_passes"] = 0
        return SensitivityTable(model=table.model, model_hash=table.model_hash,
                                calibration_hash=table.calibration_hash, candidates=list(self.keys),
                                float_bytes=table.float_bytes, fixed_bits=table.fixed_bits,
                                fixed_params=table.fixed_params, tensors=rows, meta=meta)

    def _emit_all(self, table: SensitivityTable) -> None:
        n = len(table.tensors)
        for i, row in enumerate(table.tensors):
            method = "exact" if "exact" in row.methods.values() else "estimate"
            self.ctx.emit(LayerScored(self.ctx.job_id, row.path, dict(row.scores), i + 1, n, method))


def _first_block(t: QTensor, ref: kl.Reference) -> int | None:
    """The first block a tensor's change can reach (None = from the embeddings: run everything)."""
    if t.layer is not None:
        return t.layer
    if t.path.endswith("lm_head") and ref.layers is not None:
        return len(ref.layers)
    return None


def _float_bytes(dtype: Any) -> int:
    try:
        return int(dtype.size) if dtype is not None else 2
    except AttributeError:
        return 2
