"""One sensitivity run: its request, its table and its phases (the Fisher estimate, the exact KL, the hybrid
correction), with the in-memory scorer; sensitivity.run_sensitivity builds a run and the streamed scorer
(streamed.py) is its other way of filling the table."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..engine.events import Event, Progress
from . import work
from .calibration import TokenSet
from .candidates import Candidate
from .reference import PASSES, Reference
from .scores import SensitivityTable, TensorScores
from .streamed import StreamedScorer
from .tensors import QTensor, quantizable

MODES = ("fast", "hybrid", "exact")     # from least to most exact


@dataclass(frozen=True)
class LayerScored(Event):
    """One tensor's scores are in (the live Layers view fills a row per event)."""

    path: str
    scores: dict[str, float] = field(default_factory=dict)
    done: int = 0
    total: int = 0
    method: str = "exact"            # "exact" | "estimate"
    params: int = 0                  # the tensor's facts, so a live view can place the row before the table
    kind: str = ""
    layer: int | None = None
    shape: tuple[int, ...] = ()
    work: dict[str, float] = field(default_factory=dict)   # work units for the ETA (core/quant/work.py)

    @classmethod
    def of(cls, job: int, row: TensorScores, done: int, total: int, method: str = "exact",
           scores: dict[str, float] | None = None, work: dict[str, float] | None = None) -> LayerScored:
        """The event for one table row (`scores`: those to announce, by default all the row's)."""
        return cls(job, row.path, dict(row.scores if scores is None else scores), done, total, method,
                   row.params, row.kind, row.layer, tuple(row.shape), dict(work or {}))

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
        self.reference: Reference | None = None
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
        self.start_passes = PASSES.n
        self.baseline = int(mx.get_active_memory())    # arrays alive before this run (other models...)
        scorer: Scorer = StreamedScorer() if self.streamed else InMemoryScorer()
        return self._result(scorer.score(self), reused=False)

    def load(self, fisher_only: bool = False) -> tuple[Any, Any]:
        """The model, and the dtype its weights are stored in. Exact passes run it in fp32; the Fisher
        pass alone keeps embeddings and the output head in the stored dtype (looked up, or used a
        vocabulary slice at a time: a 262k-vocabulary head in fp32 would add 0.67 GB) and the rest in fp32
        on a CPU (fast BLAS) or stored on an accelerator (no 2x copy of a large model)."""
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
            from .logit_head import find_head

            embeds = {t.path + ".weight" for t in tensors if hasattr(t.module, "as_linear")}
            embeds.add(find_head(lm.model).path + ".weight")
            lm.model.update(tree_map_with_path(
                lambda k, v: v.astype(mx.float32) if k not in embeds and mx.issubdtype(v.dtype, mx.floating)
                else v, lm.model.parameters()))
        lm.model.eval()
        mx.eval(lm.model.parameters())      # the fp32 copies now, so their stored-dtype sources are freed
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
        import mlx.core as mx

        from .fisher_groups import free_room, grouped_estimates

        sizes: dict[str, int] = {}
        scored = grouped_estimates(model, self.calib.chunks, tensors, self.cands, room=free_room(),
                                   element=2 if self.storage == mx.bfloat16 else 4, note=self._note("fisher"),
                                   storage_dtype=self.storage, seed=self.seed, check=self.ctx.check,
                                   progress=self._progress("fisher"), sizes=sizes,
                                   compact=self.mode == "fast")   # nothing reads the model after it
        table.meta["fisher_parts"] = sizes.get("parts", 1)
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
            self.ctx.emit(LayerScored.of(self.ctx.job_id, by_path[t.path], i + 1, len(tensors), "estimate", scores))
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
        todos = {t.path: [c for c in self.cands if c.fits(t.shape) and by_path[t.path].methods.get(c.key) != "exact"]
                 for t in targets}
        blocks = 1 + max((t.layer for t in tensors if t.layer is not None), default=-1)
        costs = [work.exact_tensor(len(todos[t.path]), _block_of(t, blocks), blocks) for t in targets]
        tally = work.Tally(sum(costs))
        for i, t in enumerate(targets):
            row = by_path[t.path]
            todo = todos[t.path]
            if not todo:   # finished in an earlier (interrupted) run: show it, measure nothing
                self.ctx.emit(LayerScored.of(self.ctx.job_id, row, i + 1, len(targets), work=tally.add(0.0)))
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
            self.ctx.emit(LayerScored.of(self.ctx.job_id, row, i + 1, len(targets), "exact", work=tally.add(costs[i])))
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
            self.ctx.emit(LayerScored.of(self.ctx.job_id, row, i + 1, n, "estimate"))

    def _progress(self, phase: str) -> Any:
        def report(done: int, total: int, message: str, work: dict[str, float] | None = None) -> None:
            self.ctx.emit(Progress(self.ctx.job_id, "sensitivity", done, total, message,
                                   {"step": phase, **(work or {})}))
        return report

    def _note(self, phase: str) -> Any:
        """A one-line warning of this run's `phase` (the live view and the command line show it)."""
        def say(text: str) -> None:
            self.ctx.emit(Progress(self.ctx.job_id, "sensitivity", 0, None, text, {"step": phase, "warning": True}))
        return say

    def _reference(self, model: Any) -> Reference:
        if self.reference is None:
            t0 = time.perf_counter()
            self.reference = Reference(model, self.calib.chunks, vocab=self.vocab, check=self.ctx.check,
                                          replay_bytes=(1 << 30) if self.replay else 0)
            self.times["reference"] = time.perf_counter() - t0
            if self.reference.replay_note:
                self._note("reference")(self.reference.replay_note)
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
            "forward_passes": PASSES.n - self.start_passes,
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
            self.ctx.emit(LayerScored.of(self.ctx.job_id, row, i + 1, n, method))


def _block_of(t: QTensor, blocks: int) -> int | None:
    """_first_block before the reference exists: a head reaches only itself (after the last block)."""
    return blocks if t.layer is None and t.path.endswith("lm_head") else t.layer


def _first_block(t: QTensor, ref: Reference) -> int | None:
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
