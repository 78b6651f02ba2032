"""NaN / Inf in the weights: found once, when a model is loaded, and refused with the tensor's name.

A model with one NaN weight answers garbage, scores a table of nan and quantizes "verified"; nothing
downstream can tell. One plain sum per tensor settles it: NaN and Inf carry through a sum (Inf - Inf is NaN),
and a sum is the cheapest full pass MLX has (on CPU, `isfinite(w).all()` on bf16 cost 4x more:
docs/benchmarks/load_checks.md). A sum that overflows without any NaN/Inf inside (float16, huge tensors) is
told apart by the exact `isfinite` test, run only on a tensor whose sum is not finite. Evaluated a few tensors
at a time. Runs on the engine thread."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

_BATCH = 16  # tensors evaluated together: fewer syncs, bounded extra memory


def first_nonfinite(items: Iterable[tuple[str, Any]], check: Callable[[], None] | None = None) -> str | None:
    """The name of the first floating-point array holding NaN or Inf, or None."""
    import mlx.core as mx

    batch: list[tuple[str, Any]] = []

    def flush() -> str | None:
        sums = [mx.isfinite(mx.sum(a)) for _, a in batch]
        mx.eval(sums)
        suspects = [(name, a) for (name, a), ok in zip(batch, sums, strict=True) if not ok.item()]
        batch.clear()
        for name, a in suspects:   # exact, and only where the sum says so
            if not mx.all(mx.isfinite(a)).item():
                return name
        return None

    for name, array in items:
        if not isinstance(array, mx.array) or not mx.issubdtype(array.dtype, mx.inexact):
            continue
        batch.append((name, array))
        if len(batch) >= _BATCH:
            if check is not None:
                check()
            if (bad := flush()) is not None:
                return bad
    return flush() if batch else None


def refuse(folder: Path, name: str) -> ModelLoadError:
    return ModelLoadError(f"{Path(folder).name}: tensor {name} holds NaN or Inf values: the weights are "
                          "damaged; download or convert the model again")


def check_model(model: Any, folder: Path, check: Callable[[], None] | None = None) -> None:
    """Refuse a loaded model (nn.Module) holding a non-finite parameter."""
    from mlx.utils import tree_flatten

    bad = first_nonfinite(tree_flatten(model.parameters()), check)
    if bad is not None:
        raise refuse(folder, bad)


def check_files(folder: Path, check: Callable[[], None] | None = None) -> None:
    """Refuse a model folder whose weight files hold a non-finite value, reading one batch of tensors at a
    time (memory stays bounded: for models that are never loaded whole, such as a streamed pass)."""
    import mlx.core as mx

    for file in sorted(Path(folder).glob("model*.safetensors")):
        arrays = mx.load(str(file))
        names = sorted(arrays)
        for i in range(0, len(names), _BATCH):
            chunk = [(n, arrays.pop(n)) for n in names[i:i + _BATCH]]
            bad = first_nonfinite(chunk, check)
            if bad is not None:
                raise refuse(folder, bad)
