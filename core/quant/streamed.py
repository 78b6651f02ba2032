"""Exact sensitivity for models that do not fit in memory: blocks streamed from disk one at a time.

The measure is the same as the in-memory exact pass (quantize→dequantize ONE tensor, KL of the model's
next-token distributions against the float model's over the calibration tokens): not a proxy. Only the
order of work changes:

1. Reference pass: the token embeddings, the final norm and the head stay resident (fp32); each
   transformer block's weights are read from the safetensors (a fresh lazy `mx.load`), cast to fp32,
   used for every calibration batch, and released before the next block is read. The final hidden
   states give the reference log-probs.
2. For each origin block i (in order), starting from the reference input of block i: for each of its
   tensors and candidates, the perturbed block output is one "stream"; all of block i's streams are then
   carried through blocks i+1..N-1 (each read once per origin) and the head, and their KL is taken.
   The embedding's streams start at block 0; the head's streams are the head applied to the reference
   final hidden state (a tied head is the embedding: its streams also use the perturbed head).

Cost: N reads of each block for the reference, then N(N+1)/2 block reads for the origins (the blocks²
the brief accepts), and the same forward arithmetic as the in-memory pass with replay. Memory: the
resident embeddings/head, ONE block in fp32 (plus its stored-dtype copy while it is cast), and one
origin block's streams (tensors × candidates × calibration tokens × hidden × 4 bytes) — the figure the
table's meta reports as `peak_mlx_bytes`.

How blocks are run without knowing the architecture: one forward pass with every block replaced by an
identity stand-in records each block's call arguments (attention mask, per-layer inputs...) and the
embedding output; a block is then called with a stream in place of its first argument. The head is
run by a forward pass whose blocks are replay stand-ins returning the final hidden state. This holds
for architectures whose blocks take only the hidden state plus inputs that do not depend on it and
return only the new hidden state (llama, mistral, qwen, gemma3: checked on llama here). gemma4's blocks
return (hidden, key/value state, offset) and its KV-shared blocks read the state of an earlier block
(model.previous_kvs): every stream carries the state of the blocks that others read (the reference's for
blocks before its origin, its own after), and an embedding's streams use the per-block inputs recorded
with that embedding perturbed (gemma4's per-layer inputs come from the embeddings). Checked equal to the
in-memory exact pass on tiny gemma4 models, with and without KV sharing and per-layer inputs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import QuantError
from . import host_activations, reference
from .candidates import Candidate
from .replay import Replay, StandIn, swapped
from .tensors import QTensor, fake_quantize, quantizable


class _Capture(StandIn):
    """Identity block that records its call (hidden state excluded) and its input."""

    def __init__(self, layer: Any, store: list[Any], triple: bool = False):
        super().__init__(layer)
        self.store, self.triple = store, triple

    def __call__(self, h: Any, *args: Any, **kwargs: Any) -> Any:
        self.store.append((h, args, kwargs))
        return (h, None, None) if self.triple else h


class StreamedModel:
    """A model whose transformer blocks live on disk until needed (fp32 when loaded)."""

    def __init__(self, path: Path):
        import mlx.core as mx
        from mlx.utils import tree_flatten
        from mlx_lm.utils import load_model

        self.path = Path(path)
        self.model, self.config = load_model(self.path, lazy=True)
        kind = str(self.config.get("model_type", ""))
        # gemma4: blocks return (h, key/value state, offset) and KV-shared blocks read an earlier block's
        # state (model.previous_kvs): each stream carries the state of the blocks others read.
        self.triple = kind.startswith("gemma4")
        layers = getattr(self.model, "layers", None)
        if not isinstance(layers, list) or not layers:
            raise QuantError(f"{self.path.name}: no list of transformer blocks found to stream")
        self.layers = layers
        inner = getattr(self.model, "model", None)
        self.prev = list(getattr(inner, "previous_kvs", None) or range(len(layers)))
        self.sources = {p for j, p in enumerate(self.prev) if p != j}
        self.tensors = quantizable(self.model)
        self.storage = self.tensors[0].module["weight"].dtype
        names = [n for n, _ in tree_flatten(self.model.parameters())]
        found = {m.group(1) for n in names if (m := re.match(r"(.*?\blayers\.)\d+\.", n))}
        if len(found) != 1:
            raise QuantError(f"{self.path.name}: cannot tell which weights belong to which block")
        self.prefix = found.pop()
        quantized = {t.path + ".weight" for t in self.tensors}
        fixed = [v for n, v in tree_flatten(self.model.parameters()) if n not in quantized]
        self.fixed = (sum(v.size * v.dtype.size * 8 for v in fixed), sum(v.size for v in fixed))
        resident = self._resident()
        self.model.update(_unflatten([(n, v.astype(mx.float32)) for n, v in resident]))
        mx.eval([v for _, v in self._resident()])
        self.model.eval()
        self.loads = 0

    def _resident(self) -> Any:
        from mlx.utils import tree_flatten

        return [(n, v) for n, v in tree_flatten(self.model.parameters()) if not n.startswith(self.prefix)]

    def _fresh(self, j: int) -> list[tuple[str, Any]]:
        """Block j's weights as fresh lazy arrays straight from the files (nothing read yet)."""
        import mlx.core as mx

        weights: dict[str, Any] = {}
        for f in sorted(self.path.glob("*.safetensors")):
            weights.update(mx.load(str(f)))
        if hasattr(self.model, "sanitize"):
            weights = self.model.sanitize(weights)
        head = f"{self.prefix}{j}."
        return [(k[len(head):], v) for k, v in weights.items() if k.startswith(head)]

    def load_block(self, j: int) -> Any:
        import mlx.core as mx
        from mlx.utils import tree_flatten

        block = self.layers[j]
        block.update(_unflatten([(k, v.astype(mx.float32)) for k, v in self._fresh(j)]))
        mx.eval([v for _, v in tree_flatten(block.parameters())])
        self.loads += 1
        return block

    def release_block(self, j: int) -> None:
        """Swap block j's fp32 arrays for unread lazy ones: its memory goes back."""
        import mlx.core as mx

        self.layers[j].update(_unflatten(self._fresh(j)))
        mx.clear_cache()

    def block_calls(self, x: Any) -> list[tuple[Any, tuple, dict]]:
        """Per block: (its input in the reference — only block 0's is meaningful, args, kwargs)."""
        store: list[Any] = []
        try:
            with swapped(self.layers, {j: _Capture(b, store, self.triple) for j, b in enumerate(self.layers)}):
                reference.forward(self.model, x)
        except (ValueError, TypeError) as exc:   # blocks return more than the hidden state
            raise QuantError(f"{self.path.name}: this architecture's blocks cannot be run one at a time "
                             f"({exc}): measure it in memory (--in-memory)") from exc
        return store

    def head(self, x: Any, hidden: Any) -> Any:
        """fp32 logits of the model for token batch x given the last block's output `hidden`."""
        n = len(self.layers)
        out = (hidden, None, None) if self.triple else hidden
        with swapped(self.layers, {j: Replay(self.layers[j], out) for j in range(n)}):
            return reference.forward(self.model, x)

    def step(self, j: int, block: Any, h: Any, call: tuple, kv: dict[int, Any]) -> tuple[Any, dict[int, Any]]:
        """Block j on hidden state h with its recorded call; kv: this stream's state of the blocks that
        KV-shared blocks read (returned updated). Evaluated before returning."""
        import mlx.core as mx

        _, args, kwargs = call
        if not self.triple:
            with host_activations.swapped():     # as reference.forward: the in-memory pass's arithmetic
                out = block(h, *args, **kwargs)
            mx.eval(out)
            return out, kv
        shared, offset = kv.get(self.prev[j], (None, None))
        with host_activations.swapped():
            out, shared, offset = block(h, *args, **{**kwargs, "shared_kv": shared, "offset": offset})
        if j in self.sources:
            kv = {**kv, j: (shared, offset)}
            mx.eval(out, shared)
        else:
            mx.eval(out)
        return out, kv


def _unflatten(items: list[tuple[str, Any]]) -> Any:
    from mlx.utils import tree_unflatten

    return tree_unflatten(items)


def run_streamed_exact(sm: StreamedModel, chunks: Any, cands: list[Candidate], vocab: int,
                       done: Callable[[QTensor], bool], on_scored: Callable[[QTensor, dict[str, float]], None],
                       check: Callable[[], None]) -> reference.Reference:
    """Exact ΔKL for every tensor not `done`, origin block by origin block; `on_scored` after each tensor."""
    import mlx.core as mx

    samples, seq_len = chunks.shape
    b = reference.batch_size(samples, seq_len, vocab)
    xs = [mx.array(chunks[i:i + b]) for i in range(0, samples, b)]
    calls = [sm.block_calls(x) for x in xs]
    n = len(sm.layers)
    # reference pass: every block once; keep block inputs only as the origin loop needs them
    h = [c[0][0] for c in calls]
    mx.eval(h)
    h0 = list(h)
    kv_ref: list[dict[int, Any]] = [{} for _ in xs]
    for j in range(n):
        check()
        block = sm.load_block(j)
        for k in range(len(xs)):
            h[k], kv_ref[k] = sm.step(j, block, h[k], calls[k][j], kv_ref[k])
        sm.release_block(j)
    h_final = h

    def kv_before(i: int) -> list[dict[int, Any]]:
        """The reference state of the blocks before i (what a stream starting at block i reads)."""
        return [{s: v for s, v in kv.items() if s < i} for kv in kv_ref]
    ref = reference.Reference.from_logits(xs, [sm.head(x, hf) for x, hf in zip(xs, h_final, strict=True)], vocab=vocab)

    def kl_of(streams: list[Any], perturbed: tuple[QTensor, Any] | None = None) -> float:
        total = 0.0
        for k, (x, hs) in enumerate(zip(xs, streams, strict=True)):
            check()
            if perturbed is not None:
                t, w = perturbed
                saved = t.module["weight"]
                t.module["weight"] = w
                try:
                    logits = sm.head(x, hs)
                    total += ref.kl_sum(ref.batches[k], logits)
                finally:
                    t.module["weight"] = saved
            else:
                total += ref.kl_sum(ref.batches[k], sm.head(x, hs))
        return total / ref.tokens

    by_layer: dict[int | None, list[QTensor]] = {}
    for t in sm.tensors:
        if not done(t):
            by_layer.setdefault(t.layer, []).append(t)
    resident = by_layer.pop(None, [])
    tied_embed = not any(t.path.endswith("lm_head") for t in sm.tensors)
    for t in resident:           # embeddings (streams from block 0) and the head (on the final hidden state)
        scores: dict[str, float] = {}
        original = t.module["weight"]
        fitting = [c for c in cands if c.fits(t.shape)]
        weights = {c.key: fake_quantize(original, c, sm.storage, dtype=original.dtype) for c in fitting}
        if t.path.endswith("lm_head"):
            for c in fitting:
                scores[c.key] = kl_of(h_final, (t, weights[c.key]))
            on_scored(t, scores)
            continue
        starts, own_calls = [], []
        for c in fitting:       # the embedding also feeds per-block inputs (gemma4): record them perturbed
            check()
            t.module["weight"] = weights[c.key]
            try:
                own_calls.append([sm.block_calls(x) for x in xs])
                starts.append(([cl[0][0] for cl in own_calls[-1]], [{} for _ in xs]))
                mx.eval(starts[-1][0])
            finally:
                t.module["weight"] = original
        carried = _carry(sm, starts, own_calls, 0, n, check)
        for c, (streams, _) in zip(fitting, carried, strict=True):
            scores[c.key] = kl_of(streams, (t, weights[c.key]) if tied_embed else None)
        on_scored(t, scores)
    h = h0
    for i in range(n):
        block = sm.load_block(i)
        todo = by_layer.get(i, [])
        origin: list[tuple[QTensor, Candidate, Any]] = []
        start_kv = kv_before(i)
        for t in todo:
            original = t.module["weight"]
            try:
                for c in cands:
                    if not c.fits(t.shape):
                        continue
                    check()
                    t.module["weight"] = fake_quantize(original, c, sm.storage, dtype=original.dtype)
                    out, kvs = [], []
                    for k in range(len(xs)):
                        o, kv = sm.step(i, block, h[k], calls[k][i], start_kv[k])
                        out.append(o)
                        kvs.append(kv)
                    origin.append((t, c, (out, kvs)))
            finally:
                t.module["weight"] = original
        h = [sm.step(i, block, h[k], calls[k][i], start_kv[k])[0] for k in range(len(xs))]
        sm.release_block(i)
        if not origin:
            continue
        carried = _carry(sm, [s for _, _, s in origin], [calls] * len(origin), i + 1, n, check)
        results: dict[str, dict[str, float]] = {}
        for (t, c, _), (streams, _) in zip(origin, carried, strict=True):
            results.setdefault(t.path, {})[c.key] = kl_of(streams)
        for t in todo:
            on_scored(t, results.get(t.path, {}))
    return ref


def _carry(sm: StreamedModel, streams: list[tuple[list[Any], list[dict[int, Any]]]], calls: list[list],
           start: int, n: int, check: Callable[[], None]) -> list[tuple[list[Any], list[dict[int, Any]]]]:
    """Carry streams ((hidden per batch, KV state per batch), each with its own recorded calls) through
    blocks start..n-1, each block read once for all of them; one batch's activations alive at a time."""
    group = streams
    for j in range(start, n):
        check()
        block = sm.load_block(j)
        moved = []
        for (hs, kvs), own in zip(group, calls, strict=True):
            out, state = [], []
            for k in range(len(hs)):
                o, kv = sm.step(j, block, hs[k], own[k][j], kvs[k])
                out.append(o)
                state.append(kv)
            moved.append((out, state))
        group = moved
        sm.release_block(j)
    return group


class StreamedScorer:
    """The streamed exact pass as a sensitivity Scorer (sensitivity_run.InMemoryScorer is the other one)."""

    def score(self, run: Any) -> Any:
        return measure_streamed(run)


def measure_streamed(run: Any) -> Any:
    """The streamed exact pass for a sensitivity run (sensitivity_run.SensitivityRun): fills, saves, returns its table."""
    from .sensitivity_run import LayerScored

    t0 = time.perf_counter()
    sm = StreamedModel(run.path)
    run.times["load"] = time.perf_counter() - t0
    run.fixed, run.storage = sm.fixed, sm.storage
    cfg = sm.config
    vocab = int(cfg.get("vocab_size") or cfg.get("text_config", {}).get("vocab_size", 0))
    table = run.init_table(sm.tensors, sm.storage)
    by_path = table.by_path()
    fitting = {t.path: [c for c in run.cands if c.fits(t.shape)] for t in sm.tensors}

    def done(t: QTensor) -> bool:      # measured by an earlier (interrupted) run: resume after it
        return all(by_path[t.path].methods.get(c.key) == "exact" for c in fitting[t.path])

    count = [0]
    for t in sm.tensors:
        if done(t):
            count[0] += 1
            run.ctx.emit(LayerScored.of(run.ctx.job_id, by_path[t.path], count[0], len(sm.tensors)))

    def scored(t: QTensor, scores: dict[str, float]) -> None:
        row = by_path[t.path]
        row.scores.update(scores)
        row.methods.update({k: "exact" for k in scores})
        table.save(run.target)
        count[0] += 1
        run.ctx.emit(LayerScored.of(run.ctx.job_id, row, count[0], len(sm.tensors)))

    t0 = time.perf_counter()
    run.reference = run_streamed_exact(sm, run.calib.chunks, run.cands, vocab, done, scored, run.ctx.check)
    run.times["exact"] = time.perf_counter() - t0
    table.meta["complete"] = True
    run.finish_meta(table)
    table.meta.update({"streamed": True, "block_loads": sm.loads})
    table.save(run.target)
    return table


def fp32_bytes(path: Path) -> int:
    """What the model weighs in fp32 (the in-memory pass runs it so), from the safetensors headers."""
    from ..library.safetensors_header import read_header

    return sum(4 * info.size for f in sorted(Path(path).glob("*.safetensors"))
               for info in read_header(f)[0].values())


def needs_streaming(path: Path) -> bool:
    """True when the fp32 model (plus working room) exceeds the memory available now (memory_rule)."""
    from .memory_rule import pass_memory

    return pass_memory(path).streamed
