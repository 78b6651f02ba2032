"""Check a written model against its plan, through plain mlx-lm: any difference is an error.

mlx-optiq 0.7.7 with mlx-lm 0.32 writes a uniform 4-bit model while its plan says mixed precision, and
nothing notices. Here: load the folder with `mlx_lm.load` exactly as a user would, walk every module,
compare bits / group size / mode (or "not quantized") with the plan, and weigh the files: the real bits
per weight come from the safetensors headers, and must match the plan's priced size and budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import QuantError
from . import host_math
from .passthrough import tower_bytes
from .plan import PLAN_FILE, Plan
from .write import source_tensor_bytes


@dataclass
class VerifyReport:
    path: Path
    checked: int
    real_bpw: float
    tensor_bytes: int
    file_bytes: int
    params: int
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def text(self) -> str:
        head = (f"verified {self.checked} tensors: real bpw {self.real_bpw:.3f}, "
                f"{self.tensor_bytes / 1e6:.2f} MB of tensors ({self.file_bytes / 1e6:.2f} MB of files)")
        return head if self.ok else head + "\n" + "\n".join(f"  MISMATCH {m}" for m in self.mismatches)


def verify(folder: Path, plan: Plan | None = None, *, forward: bool = True, name: str | None = None) -> VerifyReport:
    """Load `folder` with plain mlx-lm and compare it with `plan` (default: its temper-plan.json).

    Raises QuantError listing the first mismatches; returns the report when everything matches.
    `name`: what to call the folder in errors (the model's name when `folder` is a temporary one).
    Must run on the engine thread."""
    import mlx.core as mx
    from mlx_lm import load

    folder = Path(folder)
    name = name or folder.name
    if plan is None:
        if not (folder / PLAN_FILE).is_file():
            raise QuantError(f"{folder} has no {PLAN_FILE}: pass the plan to verify against")
        plan = Plan.load(folder / PLAN_FILE)
    try:
        model, _tokenizer = load(str(folder))
    except Exception as exc:
        raise QuantError(f"plain mlx_lm.load fails on {name}: {' '.join(str(exc).split())[:200]}") from exc

    modules = dict(model.named_modules())
    wanted = plan.by_path()
    mismatches: list[str] = []
    for path, entry in wanted.items():
        module = modules.get(path)
        if module is None:
            mismatches.append(f"{path}: missing from the loaded model")
            continue
        got = _quant_of(module)
        want = None if entry.candidate is None else (entry.candidate.bits, entry.candidate.group_size,
                                                     entry.candidate.mode)
        if got != want:
            mismatches.append(f"{path}: plan {_fmt(want)}, loaded {_fmt(got)}")
    for path, module in modules.items():
        if path not in wanted and _quant_of(module) is not None:
            mismatches.append(f"{path}: quantized ({_fmt(_quant_of(module))}) but the plan does not name it")

    tensor_bytes = source_tensor_bytes(folder) - tower_bytes(folder)  # a VLM's float towers: not in the plan
    file_bytes = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    real_bpw = tensor_bytes * 8 / max(plan.params, 1)
    if tensor_bytes * 8 != plan.total_bits:
        mismatches.append(f"size: files hold {tensor_bytes * 8} bits of tensors, the plan priced {plan.total_bits}")
    if plan.budget_bits is not None and tensor_bytes * 8 > plan.budget_bits:
        mismatches.append(f"budget: real {real_bpw:.4f} bpw exceeds the cap {plan.budget_bpw:.4f}")
    if forward and not mismatches:     # one token on MLX's CPU backend, where its quantized bf16 kernels took
        #                                4.5 s for 4 tokens of SmolLM2-135M and 1.2 s for 1
        logits = model(mx.array([[1] if host_math.active() else [1, 2, 3, 4]]))
        if not bool(mx.all(mx.isfinite(logits.astype(mx.float32))).item()):
            mismatches.append("forward pass gives non-finite logits")
    report = VerifyReport(folder, len(wanted), real_bpw, tensor_bytes, file_bytes, plan.params, mismatches)
    if mismatches:
        more = f" (and {len(mismatches) - 3} more)" if len(mismatches) > 3 else ""
        raise QuantError(f"{name} does not match its plan: {'; '.join(mismatches[:3])}{more}")
    return report


def _quant_of(module: object) -> tuple[int, int, str] | None:
    bits = getattr(module, "bits", None)
    if bits is None or not hasattr(module, "group_size"):
        return None
    return int(bits), int(module.group_size), str(getattr(module, "mode", "affine"))


def _fmt(q: tuple[int, int, str] | None) -> str:
    return "float" if q is None else f"{q[2]} {q[0]}b g{q[1]}"
