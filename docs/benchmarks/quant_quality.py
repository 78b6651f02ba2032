"""Held-out quality of temper's budgeted mixed precision against uniform and mlx-lm's mixed predicates.

One run prints, for each quantization of MODEL: real bpw (from the written files), size, KL(base || quant)
mean ± SE and p95, top-1 agreement, perplexity and the wall time of write + verify; then, for each temper
target, the KL ratio against the uniform quantization of equal or larger real size.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 \\
        .venv/bin/python docs/benchmarks/quant_quality.py [MODEL] [--out-md docs/benchmarks/quant_quality.md]

(The preload swaps MLX's reference BLAS for OpenBLAS: same arithmetic, far faster fp32 matmuls here.)

MODEL defaults to tests/fixtures/trained-tiny when it exists, else a random-weight tiny llama (bf16,
mechanics only: random weights say nothing about quality). Scores come from
`temper.core.quant.sensitivity.run_sensitivity` when that module exists (pass --exact to force the
exact pass), else from temper's exact per-tensor pass (`core/quant/exact.py`: quantize one tensor,
KL of the logits on calibration text). Calibration and evaluation text are disjoint: temper's
calibration module's two splits when present, else alternate source files of this repository.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FIXED = ["uniform-3", "uniform-4", "uniform-5", "mixed_3_6", "mixed_4_6", "unsloth-3"]
TARGETS = [3.5, 4.5, 5.5]


def text_sets(tokenizer, samples: int, seq_len: int):
    """(calibration chunks, evaluation chunks, description): never the same text."""
    try:
        from temper.core.quant.calibration import calibration_set, evaluation_set  # type: ignore

        cal = calibration_set(tokenizer, samples=samples, seq_len=seq_len)
        ev = evaluation_set(tokenizer, samples=samples, seq_len=seq_len, calibration=cal)
        return ([list(map(int, r)) for r in cal.chunks], [list(map(int, r)) for r in ev.chunks],
                f"{cal.describe()}; {ev.describe()}")
    except ImportError:
        pass
    from temper.core.quant.evaluate import text_chunks

    names = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    names = [n for n in sorted(names) if not n.startswith(("tests/fixtures/", "docs/"))]
    cal_text = "\n".join((ROOT / n).read_text(errors="ignore") for n in names[0::2])
    ev_text = "\n".join((ROOT / n).read_text(errors="ignore") for n in names[1::2])
    cal = text_chunks(tokenizer, cal_text, length=seq_len, count=samples)
    ev = text_chunks(tokenizer, ev_text, length=seq_len, count=samples)
    return cal, ev, (f"calibration: even-numbered repo .py files ({len(cal)} x {seq_len}); "
                     f"evaluation: odd-numbered ones ({len(ev)} x {seq_len}) — disjoint")


def scores(model_path: Path, cal, candidates, exact: bool):
    from mlx.utils import tree_flatten
    from mlx_lm.utils import load_model
    from temper.core.quant.exact import exact_scores
    from temper.core.quant.inventory import inventory

    if not exact:
        try:
            from temper.core.quant.inventory import load_inventory
            from temper.core.quant.job import merge_scores
            from temper.core.quant.sensitivity import run_sensitivity  # type: ignore
            table = run_sensitivity(None, model_path, candidates, cal)
            return merge_scores(load_inventory(model_path), table), "run_sensitivity"
        except ImportError:
            pass
    import mlx.core as mx

    model, _ = load_model(model_path)
    table = inventory(model, name=str(model_path))
    dtype = next(v.dtype for _, v in tree_flatten(model.parameters()) if v.ndim >= 2)
    model.set_dtype(mx.float32)        # forward in fp32 (fast with OpenBLAS), quantize in the source dtype
    return (exact_scores(model, table, cal, candidates, quant_dtype=dtype),
            f"exact per-tensor KL (core/quant/exact.py; forward fp32, quantized in {dtype})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", type=Path)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--exact", action="store_true", help="use temper's exact pass even if sensitivity exists")
    p.add_argument("--out-md", type=Path, help="also write the report as Markdown here")
    args = p.parse_args()

    from mlx_lm.utils import load_tokenizer
    from temper.core.quant.candidates import grid
    from temper.core.quant.evaluate import compare_folder, reference
    from temper.core.quant.recipes import RecipeRequest, build_plan
    from temper.core.quant.verify import verify
    from temper.core.quant.write import write_quantized

    work = Path(tempfile.mkdtemp(prefix="temper-quant-bench-"))
    model = args.model
    if model is None:
        model = ROOT / "tests/fixtures/trained-tiny"
        if not (model / "config.json").exists():
            from temper.core.library.synthetic import build_model
            model = build_model(work / "tiny-llama", "llama", dtype="bfloat16")
    tok = load_tokenizer(model)
    cal, ev, about = text_sets(tok, args.samples, args.seq_len)
    candidates = grid((2, 3, 4, 5, 6, 8), (32, 64, 128))
    t0 = time.perf_counter()
    table, how = scores(model, cal, candidates, args.exact)
    sens_s = time.perf_counter() - t0
    ref = reference(model, ev)

    jobs = [(name, name, RecipeRequest()) for name in FIXED]
    jobs += [(f"temper @{t}", "temper", RecipeRequest(bpw=t)) for t in TARGETS]
    jobs += [(f"temper+awq @{t}", "temper", RecipeRequest(bpw=t)) for t in TARGETS]
    for name in ("uniform-3", "uniform-4", "uniform-5"):   # temper at exactly the size of each uniform
        size = build_plan(name, table).real_bpw
        jobs.append((f"temper @{size:.3f} (= {name})", "temper", RecipeRequest(bpw=size)))
    jobs += [("optiq-like @4.75", "optiq-like", RecipeRequest(bpw=4.75)), ("oq4", "oq4", RecipeRequest()),
             ("uniform-4+awq", "uniform-4", RecipeRequest())]
    rows = []
    for label, recipe, req in jobs:
        try:
            plan = build_plan(recipe, table, req)
        except Exception as exc:  # report, don't hide: e.g. a cap the toy cannot meet
            rows.append((label, None, f"{exc}"))
            continue
        out = work / label.replace(" ", "").replace("@", "-")
        start = time.perf_counter()
        write_quantized(model, plan, out, awq_chunks=cal if "+awq" in label else None)
        report = verify(out, plan)
        wall = time.perf_counter() - start
        q = compare_folder(ref, out, name=label)
        rows.append((label, (report, q, wall, plan), ""))

    lines = [f"# Quantization quality: {Path(model).name}", "",
             f"Command: `LD_PRELOAD=/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 .venv/bin/python docs/benchmarks/quant_quality.py{' ' + str(args.model) if args.model else ''}"
             f"{' --exact' if args.exact else ''} --samples {args.samples} --seq-len {args.seq_len}`", "",
             f"- Base: {Path(model).name}, {ref.params:,} parameters, {ref.size_bytes / 1e6:.2f} MB, "
             f"perplexity {ref.ppl:.3f} on the evaluation text",
             f"- Scores: {how}, {len(candidates)} candidates (affine 2/3/4/5/6/8 × g32/64/128), {sens_s:.1f} s",
             f"- Text: {about}", "- Machine: Linux x86-64 CPU (mlx CPU build)", "",
             "| quantization | real bpw | size MB | KL mean ± SE | KL p95 | top-1 | PPL | predicted ΔKL | write+verify s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, data, err in rows:
        if data is None:
            lines.append(f"| {label} | — | — | not reachable: {err} | | | | | |")
            continue
        report, q, wall, plan = data
        pred = "—" if plan.predicted_dkl is None else f"{plan.predicted_dkl:.4f}"
        lines.append(f"| {label} | {report.real_bpw:.3f} | {report.tensor_bytes / 1e6:.3f} | {q.kl_mean:.4f} ± "
                     f"{q.kl_se:.4f} | {q.kl_p95:.4f} | {100 * q.top1:.1f}% | {q.ppl:.3f} | {pred} | {wall:.2f} |")
    lines += ["", "Temper vs uniform of equal or larger real size (KL mean ratio, lower is better):", ""]
    done = {label: data for label, data, _ in rows if data is not None}
    uniforms = [(d[0].real_bpw, label, d[1].kl_mean) for label, d in done.items() if label.startswith("uniform")]
    mixed = [(d[0].real_bpw, label, d[1].kl_mean) for label, d in done.items() if label.startswith("mixed")]
    for t in TARGETS:
        d = done.get(f"temper @{t}")
        if d is None:
            continue
        bpw, kl = d[0].real_bpw, d[1].kl_mean
        for kind, pool in (("uniform", uniforms), ("mlx-lm mixed", mixed)):
            bigger = sorted(u for u in pool if u[0] >= bpw - 1e-9)
            if bigger:
                ub, ul, ukl = bigger[0]
                change = f"{100 * (1 - kl / ukl):.0f}% lower" if kl <= ukl else f"{100 * (kl / ukl - 1):.0f}% HIGHER"
                lines.append(f"- temper @{t} ({bpw:.3f} bpw): KL {kl:.4f} vs {kind} {ul} ({ub:.3f} bpw) "
                             f"{ukl:.4f}: ratio {kl / ukl:.2f} ({change})")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out_md:
        args.out_md.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
