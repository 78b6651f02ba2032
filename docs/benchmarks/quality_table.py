"""The real-model quality table as data: one JSON document (runs, rows, rows not run) and its Markdown.

real_model_quality.py writes both after every row. `--merge OLD.json` folds the rows of an earlier run into
the new document (same evaluation set and base perplexity, or it refuses): a row measured again replaces
the old one, and an old "not run" entry whose row now exists is dropped. Each row keeps the number of the
run that made it, and the Markdown lists every run's command, date and load. Hand-written notes below
NOTES_MARK in the existing Markdown are kept.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

NOTES_MARK = "<!-- notes: kept when the table is written again -->"
TITLE = "# Held-out quality per real bit: SmolLM2-135M-Instruct (bf16 from the demo GGUF)"
MLX_LM = "mlx-lm "
PPL_TOLERANCE = 1e-3   # base perplexities of runs that may share a table: the same model and reference up to
                       # the evaluation code's float accumulation (~1e-4 nats, docs/benchmarks/eval_numpy_cpu.md)


def merge(old: dict, new: dict) -> dict:
    """NEW with OLD's runs, rows and "not run" entries folded in (NEW's rows win on equal names)."""
    if old.get("eval") and new.get("eval") and old["eval"] != new["eval"]:
        raise SystemExit(f"cannot merge: the evaluation sets differ ({old['eval'][:60]} vs {new['eval'][:60]})")
    a, b = old.get("base_ppl"), new.get("base_ppl")
    if a and b and not math.isclose(a, b, rel_tol=PPL_TOLERANCE):
        raise SystemExit(f"cannot merge: base perplexity {a:.4f} vs {b:.4f} (not the same reference)")
    old = {**old, "runs": [{"base_ppl": old.get("base_ppl"), **u} for u in old.get("runs", [])]}
    shift = len(old["runs"])
    rows = [{**r, "run": r.get("run", 1) + shift} for r in new["rows"]]
    skipped = [[n, why, run + shift] for n, why, run in new.get("skipped", [])]
    names = {r["name"] for r in rows} | {s[0] for s in skipped}
    done = {r["name"] for r in rows}
    return {**new, "runs": [*old["runs"], *({"base_ppl": b, **u} for u in new.get("runs", []))],
            "rows": [r for r in old.get("rows", []) if r["name"] not in names] + rows,
            "skipped": [s for s in old.get("skipped", []) if s[0] not in done] + skipped}


def against_mlx_lm(rows: list[dict]) -> list[str]:
    """For every mlx-lm row: temper's default row at the largest real bpw not above it, and the best temper
    row (lowest KL) not above it, with the KL ratios. Says so when temper does not beat it."""
    temper = [r for r in rows if not r["name"].startswith(MLX_LM)]
    lines = []
    for m in sorted((r for r in rows if r["name"].startswith(MLX_LM)), key=lambda r: r["real_bpw"]):
        fit = [r for r in temper if r["real_bpw"] <= m["real_bpw"] + 1e-9]
        default = max((r for r in fit if "(default)" in r["name"]), key=lambda r: r["real_bpw"], default=None)
        best = min(fit, key=lambda r: r["kl_mean"], default=None)
        if best is None:
            lines.append(f"- {m['name']} ({m['real_bpw']:.3f} bpw, KL {m['kl_mean']:.4f}): no temper row at or "
                         "below its size.")
            continue
        def line(r: dict, m: dict = m) -> str:
            return f"{r['name']} ({r['real_bpw']:.3f} bpw) KL {r['kl_mean']:.4f} = {r['kl_mean'] / m['kl_mean']:.2f}x"

        parts = [line(default)] if default is not None else []
        if best is not default:
            parts.append("lowest-KL temper row " + line(best))
        if default is not None and default["kl_mean"] < m["kl_mean"]:
            verdict = "temper's default beats it"
        elif best["kl_mean"] < m["kl_mean"]:
            verdict = "**temper's default does not beat it**; a temper row with other flags does"
        else:
            verdict = "**temper does not beat it**"
        lines.append(f"- {m['name']} ({m['real_bpw']:.3f} bpw, KL {m['kl_mean']:.4f}): " + "; ".join(parts)
                     + f" — {verdict}.")
    lost = [x.split(" (")[0][2:] for x in lines if "**" in x or "no temper row" in x]
    summary = (f"temper's default does not beat: {', '.join(lost)}." if lost else
               "temper's default row beats every mlx-lm row here at equal or smaller real size.")
    return [summary, "", *lines] if lines else []


def render(doc: dict, notes: str = "") -> str:
    runs = doc.get("runs", [])
    head = "| run | method | real bpw | KL mean ± SE | KL p95 | KL p99 | top-1 | PPL | wall s | peak RSS GB | peak MLX GB |"
    table = [head, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(doc["rows"], key=lambda r: (r["real_bpw"], r["kl_mean"])):
        table.append(f"| {r.get('run', 1)} | {r['name']} | {r['real_bpw']:.3f} | {r['kl_mean']:.4f} ± {r['kl_se']:.4f} | "
                     f"{r['kl_p95']:.3f} | {r['kl_p99']:.3f} | {100 * r['top1']:.1f}% | {r['ppl']:.3f} | "
                     f"{r['seconds']:.1f} | {r['peak_rss'] / 1e9:.2f} | {r['peak_mlx'] / 1e9:.2f} |")
    made = [f"{i}. `python docs/benchmarks/real_model_quality.py {u['command']}` ({u.get('date', 'date not kept')}, "
            f"{u.get('host', 'host')}, MLX device {u.get('device', '?')}, {u.get('cpus', '?')} CPUs, load average at "
            f"start {' / '.join(f'{x:.2f}' for x in u['load'])}; whole run {u['seconds']:.0f} s; base perplexity "
            f"{u.get('base_ppl') or doc['base_ppl']:.3f}). {u.get('scores', '')}"
            for i, u in enumerate(runs, 1)]
    fp32 = any("computed in fp32" in r["name"] for r in doc["rows"])
    exits = [f"- {r['name']}: the folder was written and measured, but the process then ended with {r['exit']}"
             for r in doc["rows"] if r.get("exit")]
    text = "\n".join([
        TITLE, "",
        "One model, one held-out evaluation set, one reference (each run computes it again: its base perplexity "
        "is shown); the rows come from these runs of the script (the table's first column):", "", *made, "",
        f"- Evaluation (held out): {doc['eval']}",
        "- Calibration (temper's built-in text; mlx-lm's quantizers get the same tokens in place of their download):",
        f"  {doc['calib']}",
        "- real bpw = all tensor bytes × 8 / parameters; KL = KL(base ‖ quant) per next-token distribution.",
        "- temper rows run `temper quantize --bpw X` with the flags shown; wall time is the whole command.",
        *(["- \"computed in fp32, stored bf16\": mlx-lm's GPTQ / AWQ / dynamic_quant run on an fp32 copy of the bf16 "
           "model (MLX's Linux CPU backend has no BLAS path for bf16), every floating tensor then stored in bf16 as "
           "a bf16 run stores it; dynamic_quant's sensitivities only are fp32, its plan and quantization are its bf16 "
           "path. How this differs from a bf16 run: docs/benchmarks/mlx_lm_fp32.md."] if fp32 else []),
        "", *table, "", "Rows sorted by real bpw.", *exits, "",
        "## Against mlx-lm", "",
        "Each mlx-lm row against temper's default row at the largest real bpw not above it, and against the "
        "lowest-KL temper row not above it (ratio = temper KL / mlx-lm KL; below 1 is better):", "",
        *against_mlx_lm(doc["rows"]), "",
        "## Not run", "",
        *([f"- {n}: {why} (run {run})" for n, why, run in doc.get("skipped", [])] or ["- none"]), "",
        NOTES_MARK, notes.strip(), ""])
    return text


def notes_of(md: Path) -> str:
    """The hand-written text below NOTES_MARK in an existing table ("" when none)."""
    if not md.is_file():
        return ""
    text = md.read_text()
    return text.split(NOTES_MARK, 1)[1] if NOTES_MARK in text else ""


def write(md: Path, doc: dict) -> None:
    """MD (keeping its notes) and the JSON beside it, each written to a temporary file and renamed."""
    for path, text in ((md, render(doc, notes_of(md))), (md.with_suffix(".json"), json.dumps(doc, indent=1))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
