"""Calibration and evaluation text: domains, chat rendering, user files, and the held-out guarantee."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temper.core.errors import QuantError
from temper.core.quant import calibration as cal


@pytest.fixture(scope="module")
def tokenizer():
    from mlx_lm.utils import load_tokenizer

    return load_tokenizer(Path(__file__).parents[1] / "fixtures" / "trained-tiny")


def test_builtin_calibration_mixes_every_domain(tokenizer):
    ts = cal.calibration_set(tokenizer, samples=16, seq_len=256)
    assert ts.chunks.shape == (16, 256)
    assert set(ts.domains) == {"prose", "code", "chat", "math", "tools", "multilingual"}
    assert not ts.notes
    text = tokenizer.decode(ts.chunks.reshape(-1).tolist())
    assert "<|im_start|>system\n" in text          # chat records went through the chat template
    assert '{"tool": "' in text                   # tool calls as JSON
    assert "Le train de nuit" in text               # non-English lines


def test_hash_is_stable_and_tracks_tokens(tokenizer):
    a = cal.calibration_set(tokenizer, samples=4, seq_len=64)
    b = cal.calibration_set(tokenizer, samples=4, seq_len=64)
    c = cal.calibration_set(tokenizer, samples=4, seq_len=32)
    assert a.hash == b.hash
    assert a.hash != c.hash


def test_evaluation_never_shares_a_record_with_calibration(tokenizer):
    calib = cal.calibration_set(tokenizer, samples=64, seq_len=256)
    held = cal.evaluation_set(tokenizer, samples=32, seq_len=256, calibration=calib)
    assert held.chunks.shape == (32, 256)
    assert calib.record_hashes and held.record_hashes
    assert not calib.record_hashes & held.record_hashes
    # also against the default exclusion list (no calibration set passed)
    assert not cal.builtin_calibration_hashes() & cal.evaluation_set(tokenizer, samples=32).record_hashes
    # and no built-in evaluation text appears verbatim inside the calibration text
    calib_text = tokenizer.decode(calib.chunks.reshape(-1).tolist())
    for record in cal.builtin_records("evaluation"):
        body = record.get("text") or record["messages"][-1]["content"]
        assert body not in calib_text


def test_user_txt_and_jsonl(tokenizer, tmp_path):
    txt = tmp_path / "mine.txt"
    txt.write_text("\n\n".join(f"Paragraph {i}: the quick brown fox jumps over the lazy dog." for i in range(40)))
    ts = cal.calibration_set(tokenizer, samples=4, seq_len=64, source=txt)
    assert ts.name == str(txt) and ts.chunks.shape == (4, 64) and set(ts.domains) == {"user"}

    jl = tmp_path / "mine.jsonl"
    jl.write_text("\n".join([json.dumps({"text": "plain text " * 30}),
                             json.dumps({"messages": [{"role": "user", "content": "hello " * 20},
                                                      {"role": "assistant", "content": "hi " * 20}]})]))
    ts = cal.calibration_set(tokenizer, samples=100, seq_len=32, source=jl)
    assert 1 <= ts.samples < 100 and ts.notes        # fewer chunks than asked: allowed, noted
    assert "<|im_start|>user" in tokenizer.decode(ts.chunks.reshape(-1).tolist())


@pytest.mark.parametrize("content,suffix,message", [
    ('{"text": "ok"}\nnot json\n', ".jsonl", "line 2 is not JSON"),
    ('{"nope": 1}\n', ".jsonl", "needs a non-empty"),
    ("", ".txt", "contains no text"),
    ("short", ".txt", "not enough for one chunk"),
    ("x", ".csv", "unsupported text file"),
])
def test_bad_user_files(tokenizer, tmp_path, content, suffix, message):
    f = tmp_path / f"bad{suffix}"
    f.write_text(content)
    with pytest.raises(QuantError, match=message):
        cal.calibration_set(tokenizer, samples=2, seq_len=64, source=f)


def test_missing_file_and_bad_sizes(tokenizer, tmp_path):
    with pytest.raises(QuantError, match="no such file"):
        cal.calibration_set(tokenizer, source=tmp_path / "missing.txt")
    with pytest.raises(QuantError, match="at least 1 sample"):
        cal.calibration_set(tokenizer, samples=0)


def test_user_evaluation_overlapping_calibration_is_refused(tokenizer, tmp_path):
    records = [{"text": f"Record number {i} is about harbours, maps and bridges. " * 4} for i in range(20)]
    f = tmp_path / "both.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in records))
    calib = cal.calibration_set(tokenizer, samples=2, seq_len=64, source=f)
    with pytest.raises(QuantError, match="held out"):
        cal.evaluation_set(tokenizer, samples=2, seq_len=64, source=f, calibration=calib)
