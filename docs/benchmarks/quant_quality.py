"""Held-out quality of temper's budgeted mixed precision against uniform and mlx-lm's mixed predicates.

One run prints, for each quantization of MODEL: real bpw (from the written files), size, KL(base || quant)
mean ± SE and p95, top-1 agreement, perplexity and the wall time of write + verify; then, for each temper
target, the KL ratio against the uniform (and mlx-lm mixed) quantization of equal or larger real size.
Temper's rows are repeated for each sensitivity mode asked (--modes fast,hybrid,exact): the scores come
from the production pass, `temper.core.quant.sensitivity.run_sensitivity`, as `temper quantize` runs it.

    LD_PRELOAD=$(.venv/bin/python -m temper.core.accel.blas --preload-path) \\
        .venv/bin/python docs/benchmarks/quant_quality.py [MODEL] [--modes fast,hybrid,exact] [--out-md FILE]

(The preload swaps MLX's reference BLAS for OpenBLAS: same arithmetic, far faster fp32 matmuls here.)

MODEL defaults to tests/fixtures/trained-tiny when it exists, else a random-weight tiny llama (bf16,
mechanics only: random weights say nothing about quality). Calibration and evaluation text are temper's
built-in calibration and evaluation splits (disjoint by record; the evaluation set is checked against
the calibration records actually used).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FIXED = ["uniform-3", "uniform-4", "uniform-5", "mixed_3_6", "mixed_4_6", "unsloth-3"]
TARGETS = [3.5, 4.5, 5.5]


def scores(engine, model_path: Path, calib, candidates, mode: str, fraction: float):
    """The production sensitivity pass, on the engine thread, merged onto the model's inventory."""
    from temper.core.quant.inventory import load_inventory
    from temper.core.quant.job import merge_scores
    from temper.core.quant.sensitivity import run_sensitivity

    def run(ctx):
        table = run_sensitivity(ctx, model_path, candidates, calib, mode=mode, fraction=fraction)
        return merge_scores(load_inventory(model_path), table), table.meta

    return engine.run(run)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", type=Path)
    p.add_argument("--samples", type=int, default=8, help="calibration chunks")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--eval-samples", type=int, default=16, help="held-out evaluation chunks (of --seq-len)")
    p.add_argument("--modes", default="fast,hybrid,exact", help="sensitivity modes to compare")
    p.add_argument("--fraction", type=float, default=0.25, help="hybrid: share of tensors measured exactly")
    p.add_argument("--no-awq", action="store_true", help="skip the AWQ rows")
    p.add_argument("--out-md", type=Path, help="also write the report as Markdown here")
    args = p.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    os.environ.setdefault("TEMPER_HOME", tempfile.mkdtemp(prefix="temper-quant-bench-home-"))

    from mlx_lm.utils import load_tokenizer
    from temper.core.accel.blas import preload_path
    from temper.core.engine import Engine
    from temper.core.quant.calibration import calibration_set, evaluation_set
    from temper.core.quant.candidates import grid
    from temper.core.quant.evaluate import compare_folder, reference
    from temper.core.quant.recipes import RecipeRequest, build_plan
    from temper.core.quant.verify import verify
    from temper.core.quant.write import write_quantized

    engine = Engine()
    work = Path(tempfile.mkdtemp(prefix="temper-quant-bench-"))
    model = args.model
    if model is None:
        model = ROOT / "tests/fixtures/trained-tiny"
        if not (model / "config.json").exists():
            from temper.core.library.synthetic import build_model
            model = build_model(work / "tiny-llama", "llama", dtype="bfloat16")
    tok = load_tokenizer(model)
    calib = calibration_set(tok, samples=args.samples, seq_len=args.seq_len)
    evset = evaluation_set(tok, samples=args.eval_samples, seq_len=args.seq_len, calibration=calib)
    cal_chunks = [list(map(int, r)) for r in calib.chunks]
    ev_chunks = [list(map(int, r)) for r in evset.chunks]
    candidates = grid((2, 3, 4, 5, 6, 8), (32, 64, 128))
    tables, about = {}, {}
    for mode in modes:
        t0 = time.perf_counter()
        tables[mode], meta = scores(engine, model, calib, candidates, mode, args.fraction)
        about[mode] = (time.perf_counter() - t0, meta.get("forward_passes", 0),
                       len(meta.get("exact_paths", [])) if mode == "hybrid" else
                       (len(tables[mode].tensors) if mode == "exact" else 0),
                       meta.get("peak_mlx_bytes", 0))
    ref = engine.run(lambda ctx: reference(model, ev_chunks))

    def row(label, recipe, req, table, awq=False):
        try:
            plan = build_plan(recipe, table, req)
        except Exception as exc:  # report, don't hide: e.g. a cap the toy cannot meet
            return (label, None, f"{exc}")
        out = work / (label.replace(" ", "").replace("@", "-").replace("(", "").replace(")", "")
                      .replace("=", "") + f"-{len(os.listdir(work))}")

        def run(ctx):
            start = time.perf_counter()
            write_quantized(model, plan, out, awq_chunks=cal_chunks if awq else None)
            report = verify(out, plan)
            wall = time.perf_counter() - start
            return report, compare_folder(ref, out, name=label), wall
        report, q, wall = engine.run(run)
        return (label, (report, q, wall, plan), "")

    best = tables[modes[-1]]        # predicted ΔKL of the fixed recipes: from the most exact scores asked
    fixed_rows = [row(name, name, RecipeRequest(), best) for name in FIXED]
    mode_rows = {}
    for mode in modes:
        table = tables[mode]
        rows = [row(f"temper @{t}", "temper", RecipeRequest(bpw=t), table) for t in TARGETS]
        if not args.no_awq:
            rows += [row(f"temper+awq @{t}", "temper", RecipeRequest(bpw=t), table, awq=True) for t in TARGETS]
        for name in ("uniform-3", "uniform-4", "uniform-5"):   # temper at exactly the size of each uniform
            size = build_plan(name, table).real_bpw
            rows.append(row(f"temper @{size:.3f} (= {name})", "temper", RecipeRequest(bpw=size), table))
        rows += [row("optiq-like @4.75", "optiq-like", RecipeRequest(bpw=4.75), table),
                 row("oq4", "oq4", RecipeRequest(), table)]
        mode_rows[mode] = rows

    blas = preload_path()
    cmd = ("LD_PRELOAD=$(.venv/bin/python -m temper.core.accel.blas --preload-path) .venv/bin/python "
           f"docs/benchmarks/quant_quality.py{' ' + str(args.model) if args.model else ''} --modes {','.join(modes)} "
           f"--samples {args.samples} --seq-len {args.seq_len} --eval-samples {args.eval_samples}"
           f"{' --no-awq' if args.no_awq else ''}")
    lines = [f"# Quantization quality: {Path(model).name}", "", f"Command: `{cmd}`", "",
             f"- Base: {Path(model).name}, {ref.params:,} parameters, {ref.size_bytes / 1e6:.2f} MB, "
             f"perplexity {ref.ppl:.3f} on the evaluation text",
             f"- Candidates: {len(candidates)} (affine 2/3/4/5/6/8 × g32/64/128); scores from "
             "`run_sensitivity` (core/quant/sensitivity.py), the pass `temper quantize` runs",
             f"- Text: {calib.describe()}; {evset.describe()} (disjoint records)",
             f"- Machine: {platform.machine()} CPU, {os.cpu_count()} cores, mlx CPU build, BLAS preload "
             f"{'yes' if blas and blas in os.environ.get('LD_PRELOAD', '') else 'no'} (wall times indicative)", "",
             "## Sensitivity passes", "",
             "| mode | wall s | forward passes | exact tensors | peak MLX MiB |", "|---|---:|---:|---:|---:|"]
    for mode in modes:
        wall, passes, nexact, peak = about[mode]
        lines.append(f"| {mode} | {wall:.1f} | {passes} | {nexact} | {peak / 2**20:.0f} |")
    header = ["| quantization | real bpw | size MB | KL mean ± SE | KL p95 | top-1 | PPL | predicted ΔKL | write+verify s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def table_lines(rows):
        out = list(header)
        for label, data, err in rows:
            if data is None:
                out.append(f"| {label} | — | — | not reachable: {err} | | | | | |")
                continue
            report, q, wall, plan = data
            pred = "—" if plan.predicted_dkl is None else f"{plan.predicted_dkl:.4f}"
            out.append(f"| {label} | {report.real_bpw:.3f} | {report.tensor_bytes / 1e6:.3f} | {q.kl_mean:.4f} ± "
                       f"{q.kl_se:.4f} | {q.kl_p95:.4f} | {100 * q.top1:.1f}% | {q.ppl:.3f} | {pred} | {wall:.2f} |")
        return out

    lines += ["", f"## Baselines (no scores needed; predicted ΔKL from the {modes[-1]} scores)", ""]
    lines += table_lines(fixed_rows)
    base = {label: data for label, data, _ in fixed_rows if data is not None}
    uniforms = [(d[0].real_bpw, label, d[1].kl_mean) for label, d in base.items() if label.startswith("uniform")]
    mixed = [(d[0].real_bpw, label, d[1].kl_mean) for label, d in base.items() if label.startswith("mixed")]
    summary = []
    for mode in modes:
        lines += ["", f"## temper with {mode} scores", ""]
        lines += table_lines(mode_rows[mode])
        lines += ["", "Against the uniform / mlx-lm mixed quantization of equal or larger real size "
                  "(KL mean ratio, lower is better):", ""]
        done = {label: data for label, data, _ in mode_rows[mode] if data is not None}
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
                    summary.append((mode, t, kind, kl / ukl))
    lines += ["", "## Summary: KL ratio, temper / comparator of equal or larger size", "",
              "| mode | " + " | ".join(f"@{t} vs uniform | @{t} vs mixed" for t in TARGETS) + " |",
              "|---|" + "---:|" * (2 * len(TARGETS))]
    for mode in modes:
        cells = []
        for t in TARGETS:
            for kind in ("uniform", "mlx-lm mixed"):
                r = [x[3] for x in summary if x[0] == mode and x[1] == t and x[2] == kind]
                cells.append(f"{r[0]:.2f}" if r else "—")
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out_md:
        args.out_md.write_text(text)
    engine.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
