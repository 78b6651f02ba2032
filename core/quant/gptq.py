"""Error-compensated rounding through the model, one transformer block at a time (GPTQ-style).

1. One capture pass per calibration chunk with every block wrapped by a tap that records the block's call
   arguments (mask, cache, per-layer inputs...) and, for the first block, its input hidden states. Blocks
   that return a plain array are skipped in this pass (the tap hands its input on unchanged): their call
   arguments do not depend on the hidden states, so the pass costs an embedding lookup. Blocks that return
   a tuple (gemma4 hands shared K/V on to later layers) run for real.
2. For block i: its planned affine Linears are wrapped by recorders that add xᵀx of their input into an
   accumulator of `HRegistry` (Linears fed the same input — q/k/v, gate/up — share one), the block runs on
   every chunk's hidden states, the recorders come out, and each Linear is rounded by
   `rounding.gptq` at its planned width and group size (Linears of one input and one candidate are
   rounded together, their rows stacked). The block's H matrices are then dropped: the registry never
   holds more than one block's, whatever the model's depth.
3. The hidden states move on to block i+1: through the block as just quantized (`sequential`, so later
   blocks correct for the earlier blocks' errors) or as the float block computed them.

The column loop runs in NumPy on a CPU and in MLX on the device where a GPU is present
(`rounding_device`: the host's NumPy made it ~90% of a GPU quantize). On a CPU the block passes run in float32 (the block's weights are cast for its pass and put back before
rounding): MLX's CPU backend multiplies bfloat16 without BLAS, at 1-8 GFLOP/s against 30+ in float32.
An untied `lm_head` is rounded against the final hidden states of the float model (its capture pass runs
every block). Embedding lookups and non-affine modes keep round-to-nearest (with clip
search when asked): they have no input activations, or no integer grid to feed errors back on. Memory: the
model, one block in float32, the calibration hidden states (chunks × tokens × hidden) and one block's H
matrices (float32).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import QuantError
from .hessians import HRegistry
from .host_activations import swapped
from .inventory import is_float_only
from .packing import device_arrays, quantized_arrays
from .plan import Plan
from .replay import module_stand_in
from .rounding import DAMP, INNER, gptq
from .rounding_device import gptq_on_device, on_accelerator

Say = Callable[[str], None]
DEVICE_ENV = "TEMPER_GPTQ_DEVICE"   # "0": the NumPy form even on a GPU (a fallback for a device-form fault)
SLICE_ELEMENTS = 1 << 25     # weights rounded at once (128 MB in float32); H and its factor are per call


@dataclass
class Rounding:
    """How planned tensors are rounded (request options `--gptq`, `--clip`; the rest are tuning knobs)."""

    gptq: bool = True           # error-compensated rounding on calibration activations
    clip: bool = True           # per-group shrink search of the scale/bias (output-error weighted)
    act_order: bool = True      # round columns in order of decreasing activation energy (static groups)
    sequential: bool = False    # feed each block the previous quantized blocks' output: no measurable gain
    #                             on the trained fixture (docs/benchmarks/rounding_ablation.md), one more
    #                             block pass each (slow with CPU quantized matmuls)
    damp: float = DAMP
    collected: Any = field(default=None, repr=False, compare=False)   # a FisherHessians (hessians.py): H
    #                             gathered by the Fisher pass on the same chunks, so no block pass is run again

    def describe(self) -> str:
        if not self.gptq:
            return "round-to-nearest" + (" with clip search" if self.clip else "")
        parts = ["GPTQ error-compensated rounding"]
        if self.act_order:
            parts.append("act-order")
        if self.clip:
            parts.append("clip search")
        parts.append("sequential blocks" if self.sequential else "float block inputs")
        return ", ".join(parts)


class Stop(Exception):
    """Ends a capture pass once everything it needed was recorded (the rest of the model is not run)."""


def _module_classes() -> tuple[Any, Any]:
    import mlx.nn as nn

    class Tap(module_stand_in()):
        """Stands in for a block during the capture pass: records its call, then runs it (mode "run")
        or hands its input on unchanged ("skip"); "probe": runs the first block and picks one of the two."""

        def __init__(self, inner: Any, keep_input: bool, last: bool) -> None:
            super().__init__(inner)
            object.__setattr__(self, "calls", [])
            object.__setattr__(self, "inputs", [])
            object.__setattr__(self, "keep_input", keep_input)
            object.__setattr__(self, "last", last)
            object.__setattr__(self, "cap", {"mode": "probe", "stop": False, "work": None})

        def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
            st = self.cap
            self.calls.append((args, kwargs))
            if self.keep_input:
                self.inputs.append(x)
            if st["mode"] == "skip":
                out = x
            else:
                with _working(self.inner, st["work"]):
                    out = self.inner(_cast(x, st["work"]), *args, **kwargs)
                if st["mode"] == "probe":          # the first block decides for the rest of the pass
                    st["mode"] = "run" if isinstance(out, tuple) else "skip"
                    if st["mode"] == "skip":
                        out = x
            if self.last and st["stop"]:
                raise Stop
            return out

    class Recorder(nn.Module):
        """Stands in for a Linear while its block runs: adds xᵀx of its input to the registry."""

        def __init__(self, inner: Any, registry: HRegistry, seen: dict[int, tuple[Any, str]], key: str,
                     stop: bool = False) -> None:
            super().__init__()
            self.inner = inner
            object.__setattr__(self, "registry", registry)
            object.__setattr__(self, "seen", seen)
            object.__setattr__(self, "key", key)
            object.__setattr__(self, "shared", None)
            object.__setattr__(self, "stop", stop)

        def __call__(self, x: Any) -> Any:
            hit = self.seen.get(id(x))
            if hit is None:
                self.seen[id(x)] = (x, self.key)   # holding x keeps its id unique for this call
                self.registry.add(self.key, x)
                object.__setattr__(self, "shared", self.key)
            else:
                object.__setattr__(self, "shared", hit[1])
            if self.stop:
                raise Stop
            return self.inner(x)

    return Tap, Recorder


def _cast(x: Any, dtype: Any) -> Any:
    import mlx.core as mx

    if dtype is None or not isinstance(x, mx.array) or not mx.issubdtype(x.dtype, mx.floating):
        return x
    return x.astype(dtype)


class _working:
    """Within the block, its floating parameters cast to `dtype` (None: unchanged); put back on exit."""

    def __init__(self, block: Any, dtype: Any) -> None:
        self.block, self.dtype, self.saved = block, dtype, None

    def __enter__(self) -> None:
        if self.dtype is None:
            return
        from mlx.utils import tree_map

        self.saved = self.block.parameters()
        self.block.update(tree_map(lambda a: _cast(a, self.dtype), self.saved))

    def __exit__(self, *exc: Any) -> None:
        if self.saved is not None:
            self.block.update(self.saved)
            self.saved = None


def work_dtype() -> Any:
    """The dtype of the block passes: float32 on a CPU (BLAS), the model's own elsewhere (None)."""
    import mlx.core as mx

    return mx.float32 if mx.default_device() == mx.cpu else None


def _hidden(out: Any) -> Any:
    return out[0] if isinstance(out, tuple) else out


def _set(model: Any, path: str, module: Any) -> None:
    from mlx.utils import tree_unflatten

    model.update_modules(tree_unflatten([(path, module)]))


def round_with_gptq(model: Any, plan: Plan, chunks: Sequence[Sequence[int]], rounding: Rounding, *,
                    on_tensor: Callable[[str], None], say: Say | None = None,
                    registry: HRegistry | None = None, capture: str = "auto") -> dict[str, Any]:
    """Round every planned affine Linear of the blocks (and an untied lm_head) in place with GPTQ.

    `on_tensor(path)` runs after each tensor is written into the model (progress and cancel go there).
    `capture`: "auto" (skip blocks that return plain arrays in the capture pass) or "run" (run them all).
    Returns what was done: tensors rounded, calibration tokens, peak H accumulators and bytes, whether the
    capture pass ran the blocks."""
    if not chunks:
        raise QuantError("GPTQ rounding needs calibration text")
    with swapped():     # on MLX's CPU backend: the blocks' SiLU and attention softmax in NumPy (host_activations)
        return _round_with_gptq(model, plan, chunks, rounding, on_tensor=on_tensor, say=say, registry=registry,
                                capture=capture)


def _round_with_gptq(model: Any, plan: Plan, chunks: Sequence[Sequence[int]], rounding: Rounding, *,
                     on_tensor: Callable[[str], None], say: Say | None, registry: HRegistry | None,
                     capture: str) -> dict[str, Any]:
    import mlx.core as mx
    import mlx.nn as nn
    import numpy as np

    registry = registry or HRegistry()
    say = say or (lambda _m: None)
    layers = list(getattr(model, "layers", None) or [])
    if not layers:
        raise QuantError("GPTQ rounding found no transformer blocks (model.layers) in this model")
    names = {id(m): p for p, m in model.named_modules()}
    prefixes = [names.get(id(layer)) for layer in layers]
    if any(p is None for p in prefixes):
        raise QuantError("GPTQ rounding could not name this model's blocks")
    wanted = plan.by_path()
    work = work_dtype()

    def planned(path: str, module: Any) -> bool:
        e = wanted.get(path)
        return (isinstance(module, nn.Linear) and e is not None and e.candidate is not None
                and e.candidate.mode == "affine" and not is_float_only(path)
                and e.candidate.fits(tuple(module.weight.shape)))

    Tap, Recorder = _module_classes()
    done: list[str] = []
    device = on_accelerator() and os.environ.get(DEVICE_ENV) != "0"   # the GPU form (rounding_device); NumPy's on a CPU

    def round_group(paths: list[str], mods: list[Any], h: Any, factors: dict[Any, Any] | None = None) -> None:
        c = wanted[paths[0]].candidate
        assert c is not None
        dtype = mods[0].weight.dtype
        on_device = device and c.group_size % INNER == 0
        shared = {"factors": {} if factors is None else factors}     # H's order and factor: once per H, not per slice
        sizes = [m.weight.shape[0] for m in mods]
        ends = np.cumsum(sizes)
        total, cols = int(ends[-1]), mods[0].weight.shape[1]
        step = max(1, SLICE_ELEMENTS // cols)
        if on_device:       # weights, H and results stay on the device: nothing model-sized crosses to the host
            parts = [gptq_on_device(_rows(mods, ends, sizes, r0, min(r0 + step, total)), h, c.bits, c.group_size,
                                    dtype, clip=rounding.clip, act_order=rounding.act_order, damp=rounding.damp,
                                    **shared) for r0 in range(0, total, step)]
            q, s, b = (mx.concatenate([p[i] for p in parts]) if len(parts) > 1 else parts[0][i] for i in range(3))
        else:
            h_np = None if h is None else np.array(h)      # None: `factors` holds it
            q = np.empty((total, cols), dtype=np.uint8)
            s = np.empty((total, cols // c.group_size), dtype=np.float32)
            b = np.empty_like(s)
            for r0 in range(0, total, step):      # rows never interact in GPTQ: a 262k-row head goes in slices
                r1 = min(r0 + step, total)
                w = np.array(_rows(mods, ends, sizes, r0, r1))
                q[r0:r1], s[r0:r1], b[r0:r1] = gptq(w, h_np, c.bits, c.group_size, dtype, clip=rounding.clip,
                                                    act_order=rounding.act_order, damp=rounding.damp, **shared)
                del w
        start = 0
        for path, mod in zip(paths, mods, strict=True):
            n = mod.weight.shape[0]
            ql = mod.to_quantized(group_size=c.group_size, bits=c.bits, mode="affine")
            rows = slice(start, start + n)
            ql.weight, ql.scales, ql.biases = (device_arrays if on_device else quantized_arrays)(
                q[rows], s[rows], b[rows], c.bits, dtype)
            start += n
            mx.eval(ql.parameters())
            _set(model, path, ql)
            done.append(path)
            on_tensor(path)

    head = getattr(model, "lm_head", None)
    head_ok = head is not None and planned("lm_head", head)
    blocks = [[(f"{prefix}.{p}", m) for p, m in layer.named_modules() if p and planned(f"{prefix}.{p}", m)]
              for prefix, layer in zip(prefixes, layers, strict=True)]
    collected = rounding.collected
    if collected is not None and not rounding.sequential and collected.covers(
            [p for linears in blocks for p, _ in linears] + (["lm_head"] if head_ok else []), list(chunks)):
        for i, linears in enumerate(blocks):
            _from_collected(collected, linears, wanted, round_group)
            say(f"block {i + 1}/{len(layers)}")
        if head_ok:
            round_group(["lm_head"], [head], collected.take(collected.key_of["lm_head"]))
        return {"tensors": len(done), "tokens": collected.tokens, "peak_h": collected.registry.peak_count,
                "peak_h_bytes": collected.registry.peak_bytes, "paths": done, "capture": "fisher"}
    # 1. capture: block call arguments, block-0 inputs, and the lm_head input (untied only, which needs
    #    the float model's final hidden states: then every block runs)
    taps = [Tap(layer, i == 0, i == len(layers) - 1) for i, layer in enumerate(layers)]
    state = {"mode": "probe" if capture == "auto" and not head_ok else "run", "stop": not head_ok,
             "work": work}
    owner = model.layers
    for i, tap in enumerate(taps):
        object.__setattr__(tap, "cap", state)
        owner[i] = tap
    seen: dict[int, tuple[Any, str]] = {}
    if head_ok:
        model.lm_head = Recorder(head, registry, seen, "lm_head", stop=True)
    tokens = 0
    try:
        for chunk in chunks:
            seen.clear()
            try:
                model(mx.array([list(chunk)]))
            except Stop:
                pass
            mx.eval(taps[0].inputs[-1], *registry.pending())
            tokens += len(chunk)
    finally:
        for i, layer in enumerate(layers):
            owner[i] = layer
        if head_ok:
            model.lm_head = head
    head_h = registry.pop("lm_head") if head_ok else None
    xs = [_cast(x, work) for x in taps[0].inputs]

    def run_block(layer: Any, i: int, xs: list[Any], record: bool) -> list[Any]:
        from mlx.utils import tree_map

        outs = []
        with _working(layer, work):
            for x, call in zip(xs, taps[i].calls, strict=True):
                seen.clear()
                a, k = tree_map(lambda v: _cast(v, work), call)
                outs.append(_hidden(layer(x, *a, **k)))
                mx.eval(outs[-1], *(registry.pending() if record else ()))
        return outs

    # 2-3. block by block
    for i, layer in enumerate(layers):
        prefix = prefixes[i]
        linears = [(f"{prefix}.{p}", m) for p, m in layer.named_modules() if p and planned(f"{prefix}.{p}", m)]
        if not linears:
            xs = run_block(layer, i, xs, record=False)
            continue
        seen = {}
        recorders = []
        for path, mod in linears:
            rec = Recorder(mod, registry, seen, path)
            _set(model, path, rec)
            recorders.append((path, mod, rec))
        try:
            outs = run_block(layer, i, xs, record=True)
        finally:
            for path, mod, _rec in recorders:
                _set(model, path, mod)
        seen.clear()
        groups: dict[tuple[str, str], list[tuple[str, Any]]] = {}
        for path, mod, rec in recorders:
            key = wanted[path].key
            groups.setdefault((rec.shared or path, key), []).append((path, mod))
        factors: dict[str, dict[Any, Any]] = {}     # per H: its order and inverse Cholesky factor, made once
        for (hkey, _), members in groups.items():
            known = factors.setdefault(hkey, {})
            round_group([p for p, _ in members], [m for _, m in members],
                        None if "h" in known else registry.get(hkey), known)
        registry.clear()
        if rounding.sequential:
            outs = run_block(layer, i, xs, record=False)
        xs = outs
        say(f"block {i + 1}/{len(layers)}")
    if head_ok and head_h is not None:
        round_group(["lm_head"], [head], head_h)
    del xs
    mx.clear_cache()
    return {"tensors": len(done), "tokens": tokens, "peak_h": registry.peak_count,
            "peak_h_bytes": registry.peak_bytes, "paths": done, "capture": state["mode"]}


def _rows(mods: list[Any], ends: Any, sizes: list[int], r0: int, r1: int) -> Any:
    """Rows r0..r1 of the Linears' weights stacked (MLX, float32)."""
    import mlx.core as mx

    pieces = []
    for m, hi, n in zip(mods, ends, sizes, strict=True):
        lo = hi - n
        if max(r0, lo) < min(r1, hi):
            pieces.append(m.weight[max(r0, lo) - lo:min(r1, hi) - lo].astype(mx.float32))
    return pieces[0] if len(pieces) == 1 else mx.concatenate(pieces, axis=0)


def _from_collected(collected: Any, linears: list[tuple[str, Any]], wanted: dict[str, Any],
                    round_group: Callable[..., None]) -> None:
    """One block's planned Linears rounded against the H the Fisher pass gathered (each H read once)."""
    groups: dict[tuple[str, str], list[tuple[str, Any]]] = {}
    for path, mod in linears:
        groups.setdefault((collected.key_of[path], wanted[path].key), []).append((path, mod))
    factors: dict[str, dict[Any, Any]] = {}
    taken: dict[str, Any] = {}
    for (hkey, _), members in groups.items():
        known = factors.setdefault(hkey, {})
        if hkey not in taken:
            taken[hkey] = collected.take(hkey)
        round_group([p for p, _ in members], [m for _, m in members], None if "h" in known else taken[hkey], known)
