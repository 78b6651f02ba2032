"""`temper kv-calibrate MODEL`: per-layer KV-cache bits from a KV sensitivity pass, saved as kv_config.json.

A command of its own rather than `temper sensitivity --kv`: it writes a different artifact (a runtime
setting next to the model, read by chat and bench, not a weight table for the quantizer), takes other
options (a mean KV width, a context length) and works on models already quantized, which the weight
sensitivity pass refuses.
"""

from __future__ import annotations

import argparse
from typing import Any

from .output import print_table


def register(sub: Any) -> None:
    p = sub.add_parser(
        "kv-calibrate",
        help="choose KV-cache bits per layer (4 or 8) from a KV sensitivity pass; writes kv_config.json",
        description="Quantize one layer's KV cache at a time (4 and 8 bits), measure the KL divergence of "
                    "next-token distributions from the float cache, and give 4 bits to the layers where it "
                    "costs least per byte saved until the mean width reaches --target-bits. The plan is "
                    "saved as kv_config.json next to the model; chat and bench use it by default "
                    "(--kv-bits 0 turns KV quantization off, 4 or 8 force a width).",
    )
    p.add_argument("model", help="model folder (float or quantized)")
    p.add_argument("--target-bits", type=float, default=6.0,
                   help="mean KV width over the cache's bytes at --context tokens, 4 to 8 (default 6)")
    p.add_argument("--context", type=int, default=8192, help="context length that weighs each layer (default 8192)")
    p.add_argument("--samples", type=int, default=4, help="calibration chunks (default 4)")
    p.add_argument("--seq-len", type=int, default=256, help="tokens per chunk (default 256)")
    p.add_argument("--chunk", type=int, default=32, help="tokens per forward step (default 32)")
    p.add_argument("--calibration", help="your own text: .txt, or .jsonl/.json with text or messages")
    p.set_defaults(func=run, on_interrupt="nothing written")


def run(args: argparse.Namespace) -> int:
    from ..core.engine.thread import get_engine
    from ..core.quant.kv_sensitivity import KVCalibrateRequest, run_kv_calibration
    from .progress import follow

    request = KVCalibrateRequest(args.model, target_bits=args.target_bits, samples=args.samples,
                                 seq_len=args.seq_len, chunk=args.chunk, context=args.context,
                                 calibration=args.calibration).validate()
    data = follow(get_engine().submit(lambda ctx: run_kv_calibration(ctx, request), kind="kv-calibrate"))
    print_table(PLAN_HEADER, plan_rows(data), right=PLAN_RIGHT)
    print(plan_summary(data))
    return 0


PLAN_HEADER = ("cache", "layer", "kind", "ΔKL 8-bit", "ΔKL 4-bit", "bits")
PLAN_RIGHT = frozenset({0, 1, 3, 4, 5})


def plan_rows(data: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per cache: its layer, kind, the KL each width costs, and the width chosen."""
    return [(str(i), str(layer), kind, f"{data['kl']['8'][i]:.2e}", f"{data['kl']['4'][i]:.2e}",
             str(bits) if bits else "float")
            for i, (layer, kind, bits) in enumerate(zip(data["layers"], data["kinds"], data["bits"], strict=False))]


def plan_summary(data: dict[str, Any]) -> str:
    calib = data["calibration"]
    return "\n".join([
        "",
        f"mean width {data['mean_bits']:.2f} bits over the cache at {data['context']} tokens "
        f"(target {data['target_bits']}); group size {data['group_size']}",
        f"calibration {calib['name']} {calib['samples']}x{calib['seq_len']} tokens in chunks of {data['chunk']}; "
        f"{data['forward_passes']} passes, {data['seconds']:.1f} s",
        f"saved: {data['file']} (chat and bench use it by default; --kv-bits 0 turns it off)",
    ])
