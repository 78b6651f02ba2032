"""AWQ-style pre-scaling, folded into the preceding RMSNorm: zero run-time cost, exact in float.

For each norm -> linears group (input_layernorm -> q/k/v, the MLP's norm -> gate/up), input channel c
gets a scale s_c = a_c^α (a = mean |activation| on calibration text, normalised to geometric mean 1).
The norm's weight is divided by s and the linears' columns multiplied by s: W·x = (W·diag(s))·(x/s), so
the float model computes the same function, while quantization now spends its precision on the channels
that carry large activations. α is chosen per group from {0, 0.25, 0.5, 0.75, 1} by the output error of
the linears at their *planned* widths on sampled activations; α = 0 (no change) is always a candidate.

Exact only where the norm output feeds those linears and nothing else: llama, mistral, qwen2/3 (dense MLP),
gemma3 (norm is x·(1+w): w' = (1+w)/s − 1) and gemma4 (plain weight). Other architectures are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import QuantError
from .plan import Plan

SUPPORTED = {"llama", "mistral", "qwen2", "qwen3", "gemma3", "gemma3_text", "gemma4", "gemma4_text"}
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
SAMPLE_TOKENS = 128


@dataclass
class Group:
    norm_owner: Any
    norm_name: str
    parent: Any
    linears: tuple[str, ...]
    prefix: str          # module path of `parent`
    one_plus: bool       # norm multiplies by (1 + w)


def groups(model: Any, model_type: str) -> list[Group]:
    if model_type not in SUPPORTED:
        raise QuantError(f"AWQ pre-scaling is exact only for {', '.join(sorted(SUPPORTED))}, not {model_type}")
    import mlx.nn as nn

    one_plus = model_type.startswith("gemma3")
    mlp_norm = "pre_feedforward_layernorm" if model_type.startswith("gemma") else "post_attention_layernorm"
    prefix = next(p for p, m in model.named_modules() if m is model.layers[0]).rsplit(".", 1)[0]
    out = []
    for i, layer in enumerate(model.layers):
        for norm_name, parent_name, names in (("input_layernorm", "self_attn", ("q_proj", "k_proj", "v_proj")),
                                              (mlp_norm, "mlp", ("gate_proj", "up_proj"))):
            parent = getattr(layer, parent_name, None)
            norm = getattr(layer, norm_name, None)
            present = tuple(n for n in names if isinstance(getattr(parent, n, None), nn.Linear))
            if parent is None or norm is None or "weight" not in norm or not present:
                continue
            if parent_name == "mlp" and len(present) != len(names):
                continue  # a MoE block: the norm output also feeds a router
            out.append(Group(layer, norm_name, parent, present, f"{prefix}.{i}.{parent_name}", one_plus))
    return out


class _Stats:
    def __init__(self) -> None:
        self.abs_sum: Any = None
        self.count = 0
        self.rows: list[Any] = []


def _recorder(inner: Any) -> Any:
    """A module standing in for a linear during the calibration pass: records |x| per channel and rows."""
    import mlx.core as mx
    import mlx.nn as nn

    class Recorder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner
            object.__setattr__(self, "stats", _Stats())

        def __call__(self, x: Any) -> Any:
            st = self.stats
            flat = x.reshape(-1, x.shape[-1]).astype(mx.float32)
            total = mx.abs(flat).sum(axis=0)
            st.abs_sum = total if st.abs_sum is None else st.abs_sum + total
            st.count += flat.shape[0]
            if sum(r.shape[0] for r in st.rows) < SAMPLE_TOKENS:
                st.rows.append(flat[:: max(1, flat.shape[0] // 32)])
            mx.eval(st.abs_sum, *st.rows[-1:])
            return self.inner(x)

    return Recorder()


def _fp32_for_the_pass(model: Any) -> list[tuple[str, Any]] | None:
    """On MLX's CPU backend, run the statistics pass in fp32 (its bf16/fp16 kernels are ~25x slower than fp32
    BLAS: the pass took over 10 minutes on a 135M model) when the fp32 copy fits, as core/accel/compute
    decides for chat. Returns the original parameters to put back after the pass, or None (nothing changed)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from ..accel.compute import free_memory, on_cpu_backend, prefer_fp32

    if not on_cpu_backend():
        return None
    kept = tree_flatten(model.parameters())
    floats = [v for _, v in kept if mx.issubdtype(v.dtype, mx.floating) and v.dtype != mx.float32]
    if not floats or not prefer_fp32(sum(v.size for v in floats) * 4, free_memory()):
        return None
    model.set_dtype(mx.float32)
    return kept


def apply_awq(model: Any, model_type: str, plan: Plan, chunks: Sequence[Sequence[int]]) -> dict[str, float]:
    """Pre-scale `model` in place for `plan`; returns the chosen α per group (path of its first linear)."""
    import mlx.core as mx

    from .tensors import fake_quantize

    if not chunks:
        raise QuantError("AWQ pre-scaling needs calibration text")
    found = groups(model, model_type)
    if not found:
        raise QuantError("AWQ found no norm -> linear groups to scale in this model")
    kept = _fp32_for_the_pass(model)          # before the recorders: its paths are the model's own
    recorders = []
    for g in found:
        rec = _recorder(getattr(g.parent, g.linears[0]))
        setattr(g.parent, g.linears[0], rec)
        recorders.append(rec)
    try:
        for chunk in chunks:
            mx.eval(model(mx.array([list(chunk)])))
    finally:
        for g, rec in zip(found, recorders, strict=True):
            setattr(g.parent, g.linears[0], rec.inner)
        if kept is not None:
            from mlx.utils import tree_unflatten

            model.update(tree_unflatten(kept))      # the very arrays it had: exact, whatever their dtypes
    wanted = plan.by_path()
    chosen: dict[str, float] = {}
    for g, rec in zip(found, recorders, strict=True):
        st = rec.stats
        act = st.abs_sum / max(st.count, 1) + 1e-6
        x = mx.concatenate(st.rows)[:SAMPLE_TOKENS]
        linears = [(name, getattr(g.parent, name)) for name in g.linears]
        cands = [(mod, wanted[f"{g.prefix}.{name}"].candidate) for name, mod in linears
                 if f"{g.prefix}.{name}" in wanted]
        cands = [(mod, c) for mod, c in cands if c is not None]
        if not cands:
            continue
        best, best_err = 0.0, None
        for alpha in ALPHAS:
            s = act ** alpha
            s = s / mx.exp(mx.log(s).mean())
            err = 0.0
            for mod, c in cands:
                w = mod.weight
                scaled = (w.astype(mx.float32) * s).astype(w.dtype)
                q = fake_quantize(scaled, c).astype(mx.float32)
                diff = (x / s) @ (q - scaled.astype(mx.float32)).T
                err += float((diff * diff).sum().item())
            if best_err is None or err < best_err:
                best, best_err = alpha, err
        chosen[f"{g.prefix}.{g.linears[0]}"] = best
        if best == 0.0:
            continue
        s = act ** best
        s = s / mx.exp(mx.log(s).mean())
        norm = getattr(g.norm_owner, g.norm_name)
        w = norm.weight
        new = ((1.0 + w.astype(mx.float32)) / s - 1.0) if g.one_plus else (w.astype(mx.float32) / s)
        norm.weight = new.astype(w.dtype)
        for _, mod in linears:
            mod.weight = (mod.weight.astype(mx.float32) * s).astype(mod.weight.dtype)
    mx.eval(model.parameters())
    return chosen
