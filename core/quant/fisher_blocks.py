"""The Fisher pass's backward one transformer block at a time, for MLX on a CPU (estimate.py).

Whole-model `mx.grad` keeps every block's forward intermediates until its backward reaches them, and runs the
model's SiLU and attention softmax on MLX's scalar exp: the NumPy stand-ins of host_activations.py evaluate
inside the transformation, and an array evaluated there keeps its graph (2.95 GB of RSS instead of 2.07 for
SmolLM2). Here, per calibration sequence:

1. the body's forward, outside any transformation, with the NumPy SiLU and softmax (`swapped`): each block's
   input and call arguments are kept (tokens × hidden each); with a `FisherHessians`, each block Linear's
   input adds its xᵀx to GPTQ's H, so GPTQ need not run these blocks again on the same chunks (gptq.py);
2. the head's gradient with respect to the final hidden state (estimate.py's sampled labels);
3. `mx.vjp` of what follows the last block (the final norm), then of each block from the last down, on its
   kept input: the block's weight gradients go to `fold` and its input's gradient to the block below;
4. the embedding taps' gradients, by `mx.vjp` of what precedes the first block.

The same gradients as the whole-model pass up to float32 rounding (tests/core/test_fisher_blocks.py). Memory:
one block's intermediates and gradients at a time. Cost: each block's forward twice, but the NumPy SiLU and
softmax in both. Only for bodies whose blocks form a chain: each block is fed the previous block's output,
returns a plain array and gets no floating array argument (a per-layer input or a float mask could carry a
gradient this would miss); anything else raises `Unsupported` before any gradient is handed out, and
estimate.py keeps the whole-model pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .hessians import FisherHessians
from .host_activations import swapped
from .replay import module_stand_in


class Unsupported(Exception):
    """This body's blocks do not form a plain chain (see the module's docstring)."""


def _plain(value: Any) -> bool:
    """A block call argument that carries no gradient: None, text, numbers, integer or boolean arrays."""
    import mlx.core as mx

    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, mx.array):
        return not mx.issubdtype(value.dtype, mx.floating)
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_plain(v) for v in value.values())
    return False


def blocks_of(body: Any, paths: list[str]) -> list[list[str]]:
    """Per block of `body.layers`, the given Linear paths inside it; raises Unsupported when a path is in none."""
    layers = getattr(body, "layers", None)
    if not isinstance(layers, list) or not layers:
        raise Unsupported("no list of blocks")
    names = {id(m): p for p, m in body.named_modules()}
    prefixes = [names.get(id(layer)) for layer in layers]
    if any(p is None for p in prefixes):
        raise Unsupported("unnamed blocks")
    out: list[list[str]] = [[] for _ in layers]
    for path in paths:
        hit = [i for i, p in enumerate(prefixes) if f".{p}." in f".{path}"]
        if len(hit) != 1:
            raise Unsupported(f"{path} is in no single block")
        out[hit[0]].append(path)
    return out


def _tap_class() -> Any:
    import mlx.core as mx

    class Tap(module_stand_in()):
        """Stands in for block i: "run" keeps its input, call arguments and output; "given" hands back
        `state["given"][i]` whatever its input (the first block also keeps what it was fed in `state["first"]`)."""

        def __init__(self, inner: Any, i: int, state: dict[str, Any]) -> None:
            super().__init__(inner)
            object.__setattr__(self, "i", i)
            object.__setattr__(self, "cap", state)

        def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
            st, i = self.cap, self.i
            if st["mode"] == "given":
                if i == 0:
                    st["first"] = x
                return st["given"][i]
            if not (_plain(args) and _plain(kwargs)):
                raise Unsupported("a block gets a floating array argument")
            if i and x is not st["outputs"][i - 1]:
                raise Unsupported("a block is not fed the previous block's output")
            out = self.inner(x, *args, **kwargs)
            if not isinstance(out, mx.array):
                raise Unsupported("a block returns more than its hidden state")
            mx.eval(out)
            st["inputs"].append(x)
            st["calls"].append((args, kwargs))
            st["outputs"].append(out)
            return out

    return Tap


def _recorder_class() -> Any:
    import mlx.nn as nn

    class Recorder(nn.Module):
        """Stands in for a block Linear during the forward: adds its input's xᵀx to the H store."""

        def __init__(self, inner: Any, path: str, store: FisherHessians, seen: dict[int, tuple[Any, str]]) -> None:
            super().__init__()
            self.inner = inner
            object.__setattr__(self, "path", path)
            object.__setattr__(self, "store", store)
            object.__setattr__(self, "seen", seen)

        def __call__(self, x: Any) -> Any:
            self.store.add(self.path, x, self.seen)
            return self.inner(x)

    return Recorder


def _set(root: Any, path: str, module: Any) -> None:
    from mlx.utils import tree_unflatten

    root.update_modules(tree_unflatten([(path, module)]))


def sequence(model: Any, body: Any, x: Any, blocks: list[list[str]], modules: dict[str, Any],
             weights: dict[str, Any], taps: dict[str, Any], head_grad: Callable[[Any], Any],
             fold: Callable[[str, Any], None], store: FisherHessians | None = None) -> dict[str, Any]:
    """One sequence's backward by blocks: `fold(path, gradient)` for every Linear of `blocks` (from the last
    block down, each gradient evaluated); returns the embedding taps' gradients (by tap path). `modules` and
    `weights`: each Linear path's module and the weight it is differentiated at; `taps`: estimate.py's
    embedding taps (their offsets None on entry and on return); `head_grad(hidden)`: d loss / d hidden."""
    import mlx.core as mx

    layers = list(body.layers)
    state: dict[str, Any] = {"mode": "run", "inputs": [], "calls": [], "outputs": [], "given": None, "first": None}
    Tap, Recorder = _tap_class(), _recorder_class()
    owner = body.layers
    recorders = {}
    if store is not None:
        seen: dict[int, tuple[Any, str]] = {}
        recorders = {p: Recorder(modules[p], p, store, seen) for ps in blocks for p in ps}
    def install() -> None:
        for i, layer in enumerate(layers):
            owner[i] = Tap(layer, i, state)

    def restore() -> None:
        for i, layer in enumerate(layers):
            owner[i] = layer

    try:
        for p, rec in recorders.items():       # set through the model's own blocks, before the taps go in
            _set(model, p, rec)
        install()
        try:
            with swapped(True):
                hidden = body(x)
                mx.eval(hidden)
        finally:
            restore()
            for p in recorders:
                _set(model, p, modules[p])
        if len(state["outputs"]) != len(layers):
            raise Unsupported("the body skips or repeats blocks")
        if store is not None:
            store.head_input(hidden)
            store.chunk_done(x)
        outputs = state["outputs"]
        state["mode"] = "given"
        install()

        def tail(o: Any) -> Any:
            state["given"] = [*outputs[:-1], o]
            return body(x)

        _, (grad,) = mx.vjp(tail, [outputs[-1]], [head_grad(hidden)])
        with swapped(True):
            for i in reversed(range(len(layers))):
                grad = _block(layers[i], blocks[i], modules, weights, state["inputs"][i], state["calls"][i],
                              grad, fold)
        if not taps:
            return {}
        state["given"] = outputs

        def prelude(*offsets: Any) -> Any:
            for tap, a in zip(taps.values(), offsets, strict=True):
                tap.offset = a
            body(x)
            return state["first"]

        zeros = [mx.zeros((*x.shape, tap.inner["weight"].shape[-1]), dtype=tap.inner["weight"].dtype)
                 for tap in taps.values()]
        try:
            _, grads = mx.vjp(prelude, zeros, [grad])
        finally:
            for tap in taps.values():
                tap.offset = None
        return dict(zip(taps, grads, strict=True))
    finally:
        restore()


def _block(layer: Any, paths: list[str], modules: dict[str, Any], weights: dict[str, Any], x: Any,
           call: tuple[tuple[Any, ...], dict[str, Any]], grad: Any, fold: Callable[[str, Any], None]) -> Any:
    """vjp of one block at its kept input: folds its weight gradients, returns its input's gradient."""
    import mlx.core as mx

    args, kwargs = call

    def f(h: Any, *ws: Any) -> Any:
        for p, w in zip(paths, ws, strict=True):
            modules[p]["weight"] = w
        return layer(h, *args, **kwargs)

    try:
        _, grads = mx.vjp(f, [x, *(weights[p] for p in paths)], [grad])
    finally:
        for p in paths:
            modules[p]["weight"] = weights[p]
    mx.eval(grads)
    for p, g in zip(paths, grads[1:], strict=True):
        fold(p, g)
    return grads[0]
