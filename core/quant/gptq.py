"""Error-compensated rounding through the model, one transformer block at a time (GPTQ-style).

1. One forward pass per calibration chunk with every block wrapped by a tap that records the block's call
   arguments (mask, cache, per-layer inputs...) and, for the first block, its input hidden states.
2. For block i: its planned affine Linears are wrapped by recorders that add xᵀx of their input into an
   accumulator of `HRegistry` (Linears fed the same input — q/k/v, gate/up — share one), the block runs on
   every chunk's hidden states, the recorders come out, and each Linear is rounded by
   `rounding.gptq` at its planned width and group size (Linears of one input and one candidate are
   rounded together, their rows stacked). The block's H matrices are then dropped: the registry never
   holds more than one block's, whatever the model's depth.
3. The hidden states move on to block i+1: through the block as just quantized (`sequential`, so later
   blocks correct for the earlier blocks' errors) or as the float block computed them.

An untied `lm_head` is rounded against the final hidden states of the float model (recorded in step 1).
Embedding lookups and non-affine modes keep round-to-nearest (with clip search when asked): they have no
input activations, or no integer grid to feed errors back on. Memory: the model, the calibration hidden
states (chunks × tokens × hidden, in the model's dtype) and one block's H matrices (float32).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import QuantError
from .inventory import is_float_only
from .plan import Plan
from .rounding import DAMP, gptq, quantized_arrays

Say = Callable[[str], None]


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


class HRegistry:
    """The live H accumulators, keyed by an input's name; counts the most ever live at once."""

    def __init__(self) -> None:
        self.live: dict[str, Any] = {}
        self.tokens: dict[str, int] = {}
        self.peak_count = 0
        self.peak_bytes = 0

    def add(self, key: str, x: Any) -> None:
        import mlx.core as mx

        flat = x.reshape(-1, x.shape[-1]).astype(mx.float32)
        h = flat.T @ flat
        self.live[key] = h if key not in self.live else self.live[key] + h
        self.tokens[key] = self.tokens.get(key, 0) + int(flat.shape[0])
        self.peak_count = max(self.peak_count, len(self.live))
        self.peak_bytes = max(self.peak_bytes, sum(int(v.nbytes) for v in self.live.values()))

    def pop(self, key: str) -> Any:
        self.tokens.pop(key, None)
        return self.live.pop(key)

    def clear(self) -> None:
        self.live.clear()
        self.tokens.clear()


def _module_classes() -> tuple[Any, Any]:
    import mlx.nn as nn

    class Tap(nn.Module):
        """Stands in for a block during the capture pass: records its call, then runs it."""

        def __init__(self, inner: Any, keep_input: bool) -> None:
            super().__init__()
            self.inner = inner
            object.__setattr__(self, "calls", [])
            object.__setattr__(self, "inputs", [])
            object.__setattr__(self, "keep_input", keep_input)

        def __getattr__(self, name: str) -> Any:   # the model reads block attributes (use_sliding...)
            try:
                return super().__getattr__(name)
            except AttributeError:
                if "inner" not in self:
                    raise
                return getattr(self["inner"], name)

        def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls.append((args, kwargs))
            if self.keep_input:
                self.inputs.append(x)
            return self.inner(x, *args, **kwargs)

    class Recorder(nn.Module):
        """Stands in for a Linear while its block runs: adds xᵀx of its input to the registry."""

        def __init__(self, inner: Any, registry: HRegistry, seen: dict[int, tuple[Any, str]], key: str) -> None:
            super().__init__()
            self.inner = inner
            object.__setattr__(self, "registry", registry)
            object.__setattr__(self, "seen", seen)
            object.__setattr__(self, "key", key)
            object.__setattr__(self, "shared", None)

        def __call__(self, x: Any) -> Any:
            hit = self.seen.get(id(x))
            if hit is None:
                self.seen[id(x)] = (x, self.key)   # holding x keeps its id unique for this call
                self.registry.add(self.key, x)
                object.__setattr__(self, "shared", self.key)
            else:
                object.__setattr__(self, "shared", hit[1])
            return self.inner(x)

    return Tap, Recorder


def _hidden(out: Any) -> Any:
    return out[0] if isinstance(out, tuple) else out


def _set(model: Any, path: str, module: Any) -> None:
    from mlx.utils import tree_unflatten

    model.update_modules(tree_unflatten([(path, module)]))


def round_with_gptq(model: Any, plan: Plan, chunks: Sequence[Sequence[int]], rounding: Rounding, *,
                    on_tensor: Callable[[str], None], say: Say | None = None,
                    registry: HRegistry | None = None) -> dict[str, Any]:
    """Round every planned affine Linear of the blocks (and an untied lm_head) in place with GPTQ.

    `on_tensor(path)` runs after each tensor is written into the model (progress and cancel go there).
    Returns what was done: tensors rounded, calibration tokens, peak H accumulators and bytes."""
    import mlx.core as mx
    import mlx.nn as nn

    if not chunks:
        raise QuantError("GPTQ rounding needs calibration text")
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

    def planned(path: str, module: Any) -> bool:
        e = wanted.get(path)
        return (isinstance(module, nn.Linear) and e is not None and e.candidate is not None
                and e.candidate.mode == "affine" and not is_float_only(path)
                and e.candidate.fits(tuple(module.weight.shape)))

    Tap, Recorder = _module_classes()
    # 1. capture: block call arguments, block-0 inputs, and the lm_head input (untied only)
    taps = [Tap(layer, i == 0) for i, layer in enumerate(layers)]
    owner = model.layers
    for i, tap in enumerate(taps):
        owner[i] = tap
    head = getattr(model, "lm_head", None)
    head_ok = head is not None and planned("lm_head", head)
    seen: dict[int, tuple[Any, str]] = {}
    if head_ok:
        model.lm_head = Recorder(head, registry, seen, "lm_head")
    tokens = 0
    try:
        for chunk in chunks:
            seen.clear()
            ids = mx.array([list(chunk)])
            mx.eval(model(ids), taps[0].inputs[-1], *(registry.live.values()))
            tokens += len(chunk)
    finally:
        for i, layer in enumerate(layers):
            owner[i] = layer
        if head_ok:
            model.lm_head = head
    head_h = registry.pop("lm_head") if head_ok else None
    xs = list(taps[0].inputs)
    done: list[str] = []

    def round_group(paths: list[str], mods: list[Any], h: Any) -> None:
        c = wanted[paths[0]].candidate
        assert c is not None
        dtype = mods[0].weight.dtype
        w = mx.concatenate([m.weight for m in mods], axis=0)
        q, s, b = gptq(w, h, c.bits, c.group_size, dtype, clip=rounding.clip, act_order=rounding.act_order,
                       damp=rounding.damp)
        start = 0
        for path, mod in zip(paths, mods, strict=True):
            n = mod.weight.shape[0]
            wq, sq, bq = quantized_arrays(q[start:start + n], s[start:start + n], b[start:start + n], c.bits, dtype)
            start += n
            ql = mod.to_quantized(group_size=c.group_size, bits=c.bits, mode="affine")
            ql.weight, ql.scales, ql.biases = wq, sq, bq
            mx.eval(ql.parameters())
            _set(model, path, ql)
            done.append(path)
            on_tensor(path)

    # 2-3. block by block
    for i, layer in enumerate(layers):
        prefix = prefixes[i]
        linears = [(f"{prefix}.{p}", m) for p, m in layer.named_modules() if p and planned(f"{prefix}.{p}", m)]
        if not linears:
            outs = [_hidden(layer(x, *a, **k)) for x, (a, k) in zip(xs, taps[i].calls, strict=True)]
            mx.eval(outs)
            xs = outs
            continue
        seen = {}
        recorders = []
        for path, mod in linears:
            rec = Recorder(mod, registry, seen, path)
            _set(model, path, rec)
            recorders.append((path, mod, rec))
        try:
            outs = []
            for x, (a, k) in zip(xs, taps[i].calls, strict=True):
                seen.clear()
                outs.append(_hidden(layer(x, *a, **k)))
                mx.eval(outs[-1], *(registry.live.values()))
        finally:
            for path, mod, _rec in recorders:
                _set(model, path, mod)
        seen.clear()
        groups: dict[tuple[str, str], list[tuple[str, Any]]] = {}
        for path, mod, rec in recorders:
            key = wanted[path].key
            groups.setdefault((rec.shared or path, key), []).append((path, mod))
        for (hkey, _), members in groups.items():
            round_group([p for p, _ in members], [m for _, m in members], registry.live[hkey])
        registry.clear()
        if rounding.sequential:
            outs = [_hidden(layer(x, *a, **k)) for x, (a, k) in zip(xs, taps[i].calls, strict=True)]
            mx.eval(outs)
        xs = outs
        say(f"block {i + 1}/{len(layers)}")
    if head_ok and head_h is not None:
        round_group(["lm_head"], [head], head_h)
    del xs
    mx.clear_cache()
    return {"tensors": len(done), "tokens": tokens, "peak_h": registry.peak_count,
            "peak_h_bytes": registry.peak_bytes, "paths": done}
