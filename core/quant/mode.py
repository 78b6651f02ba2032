"""Which sensitivity pass to run by default, and how much memory a pass will need: one rule for every caller.

`choose_mode(...)` is what "auto" means for the CLI, the wizard and profiles alike. The rule:

- MLX on the CPU only -> fast. Hybrid's exact phase is (fraction × tensors × candidates) full forward passes
  over the calibration text: hours for a 135M model on a 2-core CPU, where the Fisher estimate takes one
  forward and backward per calibration sequence plus one quantization per tensor and candidate.
- an accelerator (Metal, CUDA) and at most HYBRID_MAX_PARAMS parameters whose fp32 copy fits -> hybrid (the
  estimate, then the exact KL for the most damaging quarter of the tensors).
- bigger models -> fast: the exact phase grows as tensors × candidates × model size and needs the model in
  fp32. Measured on an H200 (docs/benchmarks/sensitivity_scale_gpu.md): a 135M model's default quantize took
  147.9 s with hybrid and 4.9 s with the estimate; an 8B model's hybrid pass 283 s.

`fisher_sequences(...)` is the same rule's word on how many calibration sequences a fast pass reads: on a
CPU at most CPU_FISHER_SEQUENCES of them, evenly spread over the set (each costs a forward, a backward and
a statistics update of the whole model: ~5 CPU s for a 135M model on this 2-core machine), all of them
elsewhere. GPTQ and AWQ still see every chunk. The cap is the default sample count: 8 sequences of the 16
cost SmolLM2-135M's 4.5 bpw allocation held-out KL 0.227 against 0.178 with 16
(docs/benchmarks/quantize_speed_cpu.md), so a CPU reads 16 (more only when asked for with --samples is
capped).

`peak_bytes(...)` prices a pass before it starts (issue 16's memory guard): the sensitivity run refuses a
fast pass, or streams an exact one, when the price exceeds what is available, and says both figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HYBRID_MAX_PARAMS = 20_000_000      # hybrid's exact phase stays within seconds below this
FIT_FRACTION = 0.85          # of the available memory a pass may plan to use
CPU_FISHER_SEQUENCES = 16    # calibration sequences a fast pass reads on a CPU (8: KL 0.227, not 0.178)


@dataclass(frozen=True)
class ModeChoice:
    mode: str                # "fast" | "hybrid" | "exact"
    reason: str


@dataclass(frozen=True)
class ModelSize:
    """What the safetensors headers say about a model (no weights read)."""

    params: int
    stored_bytes: int
    embed_params: int        # parameters of embedding tables (looked up, kept in the stored dtype)
    hidden: int
    layers: int
    vocab: int
    lookup_params: int = 0   # of tables only looked up (not the head): the fast pass keeps their calibration rows

    @classmethod
    def of(cls, path: Path) -> ModelSize:
        import json

        from ..library.safetensors_header import read_header

        params = stored = embed = 0
        tables: dict[str, int] = {}
        heads = False
        for f in sorted(Path(path).glob("*.safetensors")):
            for name, info in read_header(f)[0].items():
                params += info.size
                stored += info.nbytes if hasattr(info, "nbytes") else info.size * 2
                if "embed" in name and name.endswith("weight"):
                    embed += info.size
                    tables[name] = info.size
                heads = heads or name.endswith("lm_head.weight")
        cfg = json.loads((Path(path) / "config.json").read_text())
        text = cfg.get("text_config", cfg)
        tied = not heads and bool(cfg.get("tie_word_embeddings", text.get("tie_word_embeddings", True)))
        lookup = sum(n for name, n in tables.items() if not (tied and name.endswith("embed_tokens.weight")))
        return cls(params, stored, embed, int(text.get("hidden_size", 4096)),
                   int(text.get("num_hidden_layers", 32)), int(text.get("vocab_size", 32000)), lookup)


def backend() -> str:
    """'cpu', 'metal' or 'cuda': where MLX computes here."""
    import sys

    from ..accel.blas import cuda_build  # blas owns the CUDA-build probe
    from ..accel.compute import on_cpu_backend

    if not on_cpu_backend():
        return "metal" if sys.platform == "darwin" else ("cuda" if cuda_build() else "gpu")
    return "cpu"


def available_bytes(where: str | None = None) -> int:
    """Memory a pass may use: the accelerator's (MLX device info) or the machine's available RAM."""
    import psutil

    ram = int(psutil.virtual_memory().available)
    if (where or backend()) == "cpu":
        return ram
    import mlx.core as mx

    info = mx.device_info() if hasattr(mx, "device_info") else {}
    size = int(info.get("memory_size", 0) or 0)
    return min(size - int(mx.get_active_memory()), ram) if size else ram


def choose_mode(size: ModelSize, where: str | None = None, available: int | None = None) -> ModeChoice:
    where = where or backend()
    if where == "cpu":
        return ModeChoice("fast", "MLX runs on the CPU here: hybrid's exact KL passes (tensors × candidates "
                                  "forward passes) would take hours; the Fisher estimate takes minutes")
    if size.params > HYBRID_MAX_PARAMS:
        return ModeChoice("fast", f"{size.params / 1e6:,.0f}M parameters: hybrid's exact passes grow as tensors × "
                                  f"candidates × model size (148 s for 135M on an H200, against 5 s for the "
                                  f"estimate); hybrid is the default up to {HYBRID_MAX_PARAMS / 1e6:.0f}M")
    avail = available_bytes(where) if available is None else available
    need = peak_bytes(size, "hybrid", where)
    if need > FIT_FRACTION * avail:
        return ModeChoice("fast", f"hybrid's fp32 copy needs about {need / 1e9:.1f} GB, "
                                  f"{avail / 1e9:.1f} GB available")
    return ModeChoice("hybrid", f"{where} accelerator and {size.params / 1e6:,.1f}M parameters: the estimate for "
                                "every tensor, exact KL for the most damaging quarter")


def fisher_sequences(samples: int, where: str | None = None) -> tuple[int, str]:
    """How many of `samples` calibration sequences the fast (Fisher) pass reads here, and why."""
    where = where or backend()
    if where == "cpu" and samples > CPU_FISHER_SEQUENCES:
        return CPU_FISHER_SEQUENCES, (f"{CPU_FISHER_SEQUENCES} of the {samples} calibration sequences, evenly "
                                      "spread (a CPU: each costs a forward and backward of the whole model)")
    return samples, ""


def peak_bytes(size: ModelSize, mode: str, where: str | None = None, *, tokens: int = 4096,
               seq_len: int = 256, parts: int = 1) -> int:
    """Planned peak of a sensitivity pass in bytes (model, working arrays, statistics; a fast pass made in
    `parts` parts holds one part's gradients and statistics: fisher_groups.py).

    fast: the model (non-embedding weights in fp32 on a CPU, stored dtype elsewhere; tables only looked up
    keep the calibration's rows, estimate.py's `compact`), one sequence's Linear gradients and their
    accumulated statistics (same size each, plus 1/16 for group sums), the embedding rows the calibration
    reaches, and a few 64 MiB vocabulary slices.
    exact / hybrid (in memory): the whole model in fp32, the reference log-probs and block replay
    buffers (capped at 1 GiB each), one batch of logits; hybrid adds the fast pass's working set."""
    where = where or backend()
    linear = max(0, size.params - size.embed_params)
    activations = seq_len * size.hidden * size.layers * 4 * 24
    if mode == "fast":
        per = 4 if where == "cpu" else max(1, size.stored_bytes // max(1, size.params))
        stored_per = size.stored_bytes // max(1, size.params)
        model = linear * per + (size.stored_bytes - linear * stored_per) - size.lookup_params * stored_per
        model += min(tokens, size.vocab) * size.lookup_params // max(1, size.vocab) * stored_per    # kept rows
        stats = linear * per * 2 + linear * per // 16 + size.vocab * size.hidden * per * 17 // 16
        rows = min(tokens, size.vocab) * size.hidden * 4 * 3
        return int(model + stats // max(1, parts) + rows + 4 * (64 << 20) + activations)
    fp32 = size.params * 4
    exact = fp32 + (2 << 30) + 3 * (256 << 20) + activations
    if mode == "hybrid":
        return int(exact + linear * 4 * 2 + size.vocab * size.hidden * 4)
    return int(exact)
