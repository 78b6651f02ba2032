"""Calibration and evaluation text: our own mixed-domain records, rendered, tokenized and chunked.

Two splits that never share a record: `calibration` (what the sensitivity pass and AWQ statistics see)
and `evaluation` (held-out text for `temper eval`). Built in: hand-written prose, code, chat with a
system prompt, JSON tool calls and a few non-English lines (data/*.json), topped up with generated
arithmetic reasoning and tool calls (generated_text.py) until the asked number of tokens is there.
Records with `messages` go through the model's chat template when it has one.

Users can bring their own: a .txt file (paragraphs split on blank lines), or .jsonl / .json with
records holding "text" or "messages". Every record is hashed; an evaluation set that shares a record
with the calibration set in use is refused. `TokenSet.hash` (sha256 of the token ids and chunk shape)
keys the sensitivity cache.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import QuantError
from . import generated_text

DATA = Path(__file__).resolve().parent / "data"
SPLITS = ("calibration", "evaluation")
Record = dict[str, Any]


@dataclass
class TokenSet:
    """Token chunks ready for forward passes, with where they came from."""

    name: str                          # "builtin" or the user's file
    split: str                         # "calibration" | "evaluation"
    chunks: np.ndarray                 # (samples, seq_len) int32
    record_hashes: frozenset[str] = field(default_factory=frozenset)
    domains: dict[str, int] = field(default_factory=dict)   # tokens per domain in the chunks' stream
    notes: list[str] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return int(self.chunks.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.chunks.shape[1])

    @property
    def tokens(self) -> int:
        return int(self.chunks.size)

    @property
    def hash(self) -> str:
        h = hashlib.sha256(f"{self.chunks.shape}".encode())
        h.update(np.ascontiguousarray(self.chunks, dtype=np.int32).tobytes())
        return h.hexdigest()

    def describe(self) -> str:
        mix = ", ".join(f"{d} {n}" for d, n in sorted(self.domains.items(), key=lambda kv: -kv[1]))
        return (f"{self.split}: {self.name}, {self.samples} x {self.seq_len} tokens "
                f"(sha256 {self.hash[:12]}; tokens by domain: {mix})")

    def meta(self) -> dict[str, Any]:
        return {"name": self.name, "split": self.split, "samples": self.samples, "seq_len": self.seq_len,
                "hash": self.hash, "domains": dict(self.domains), "notes": list(self.notes)}


def record_hash(record: Record) -> str:
    """Hash of a record's content (text or messages), whitespace-normalized."""
    body = record.get("messages") if "messages" in record else record.get("text", "")
    text = json.dumps(body, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()


# -- reading records ------------------------------------------------------------------------------------
def builtin_records(split: str) -> list[Record]:
    if split not in SPLITS:
        raise QuantError(f"unknown text split {split!r} (choose calibration or evaluation)")
    raw = json.loads((DATA / f"{split}.json").read_text(encoding="utf-8"))
    return list(raw["records"])


def read_records(path: Path) -> list[Record]:
    """User text: .txt (blank-line paragraphs), .jsonl or .json (records with "text" or "messages")."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise QuantError(f"{path}: no such file")
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise QuantError(f"{path}: cannot read it as UTF-8 text ({exc})") from exc
    suffix = path.suffix.lower()
    if suffix in (".txt", ".md", ""):
        paras = [p.strip() for p in content.split("\n\n") if p.strip()]
        records = [{"domain": "user", "text": p} for p in paras]
    elif suffix in (".jsonl", ".json"):
        records = []
        if suffix == ".json":
            try:
                data = json.loads(content)
            except json.JSONDecodeError as exc:
                raise QuantError(f"{path}: invalid JSON at line {exc.lineno}") from exc
            items = data.get("records", []) if isinstance(data, dict) else data
            lines: Iterable[tuple[int, Any]] = enumerate(items if isinstance(items, list) else [], 1)
        else:
            lines = _jsonl(path, content)
        for n, item in lines:
            records.append(_check_record(path, n, item))
    else:
        raise QuantError(f"{path}: unsupported text file (use .txt, .jsonl or .json)")
    if not records:
        raise QuantError(f"{path}: contains no text")
    return records


def _jsonl(path: Path, content: str) -> Iterator[tuple[int, Any]]:
    for n, line in enumerate(content.splitlines(), 1):
        if line.strip():
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as exc:
                raise QuantError(f"{path}: line {n} is not JSON ({exc.msg})") from exc


def _check_record(path: Path, n: int, item: Any) -> Record:
    if isinstance(item, dict) and isinstance(item.get("text"), str) and item["text"].strip():
        return {"domain": str(item.get("domain", "user")), "text": item["text"]}
    if isinstance(item, dict) and isinstance(item.get("messages"), list) and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in item["messages"]) and item["messages"]:
        return {"domain": str(item.get("domain", "user")), "messages": item["messages"]}
    raise QuantError(f"{path}: record {n} needs a non-empty \"text\" string or a \"messages\" list "
                     "of {role, content}")


# -- rendering and tokenizing ---------------------------------------------------------------------------
def render(record: Record, tokenizer: Any) -> str:
    """A record as the model would see it: chat records through the model's template where it has one."""
    if "messages" not in record:
        return record["text"]
    messages = record["messages"]
    if getattr(tokenizer, "chat_template", None) or getattr(tokenizer, "has_chat_template", False):
        try:
            return tokenizer.apply_chat_template(messages, tokenize=False)
        except Exception:  # templates that reject a role (e.g. "tool"): fold it into a user turn
            folded = [m if m["role"] in ("system", "user", "assistant")
                      else {"role": "user", "content": f"[{m['role']} result] {m['content']}"} for m in messages]
            try:
                return tokenizer.apply_chat_template(folded, tokenize=False)
            except Exception:
                pass
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def _encode(tokenizer: Any, text: str, chat: bool) -> list[int]:
    # A rendered chat already has the template's special tokens; plain text gets the tokenizer's defaults.
    ids = tokenizer.encode(text, add_special_tokens=not chat)
    return list(ids)


def _interleave(records: list[Record]) -> list[Record]:
    """Round-robin over domains so any prefix of the stream mixes them."""
    by_domain: dict[str, list[Record]] = {}
    for r in records:
        by_domain.setdefault(str(r.get("domain", "user")), []).append(r)
    out: list[Record] = []
    queues = list(by_domain.values())
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def _mix(records: list[Record], generated: Iterator[Record]) -> Iterator[Record]:
    for i, rec in enumerate(records):
        yield rec
        if i % 3 == 2:
            extra = next(generated, None)
            if extra is not None:
                yield extra
    yield from generated


def build(
    tokenizer: Any,
    *,
    split: str = "calibration",
    samples: int = 16,
    seq_len: int = 256,
    source: str | Path | None = None,
    exclude: frozenset[str] | set[str] = frozenset(),
) -> TokenSet:
    """Tokenize a split into `samples` chunks of `seq_len` tokens.

    source None = the built-in mix (topped up with generated records as needed); else a user file, which
    must hold at least one chunk's worth of tokens (fewer chunks than asked is allowed and noted).
    `exclude`: record hashes that must not appear (the other split's); built-in generated records that
    collide are skipped, a user file that collides is refused."""
    if samples < 1 or seq_len < 2:
        raise QuantError(f"need at least 1 sample of 2 tokens (got {samples} x {seq_len})")
    if split not in SPLITS:
        raise QuantError(f"unknown text split {split!r} (choose calibration or evaluation)")
    user = source is not None
    records = read_records(Path(source)) if user else builtin_records(split)
    if user:
        clash = {record_hash(r) for r in records} & set(exclude)
        if clash:
            raise QuantError(f"{source}: {len(clash)} record(s) also appear in the calibration text: "
                             "evaluation text must be held out")
    generated = generated_text.records(split) if not user else iter(())
    # hand-written records, round-robin over domains, with a generated one after every third
    pending = _mix(_interleave(records), generated)
    eos = _eos_id(tokenizer)
    need = samples * seq_len
    stream: list[int] = []
    domains: Counter[str] = Counter()
    hashes: set[str] = set()
    notes: list[str] = []
    while len(stream) < need:
        rec = next(pending, None)
        if rec is None:
            break
        h = record_hash(rec)
        if h in exclude or h in hashes:
            continue
        hashes.add(h)
        ids = _encode(tokenizer, render(rec, tokenizer), "messages" in rec)
        if eos is not None:
            ids.append(eos)
        domains[str(rec.get("domain", "user"))] += len(ids)
        stream.extend(ids)
    n = min(samples, len(stream) // seq_len)
    if n == 0:
        raise QuantError(f"{source or 'the text'} has {len(stream)} tokens: not enough for one chunk of "
                         f"{seq_len} (use a shorter --seq-len or more text)")
    if n < samples:
        notes.append(f"only {len(stream)} tokens: {n} chunks instead of {samples}")
    chunks = np.asarray(stream[: n * seq_len], dtype=np.int32).reshape(n, seq_len)
    return TokenSet(name=str(source) if user else "builtin", split=split, chunks=chunks,
                    record_hashes=frozenset(hashes), domains=dict(domains), notes=notes)


def calibration_set(tokenizer: Any, *, samples: int = 16, seq_len: int = 256,
                    source: str | Path | None = None) -> TokenSet:
    return build(tokenizer, split="calibration", samples=samples, seq_len=seq_len, source=source)


def evaluation_set(tokenizer: Any, *, samples: int = 16, seq_len: int = 256, source: str | Path | None = None,
                   calibration: TokenSet | None = None) -> TokenSet:
    """Held-out text. Pass the calibration set in use so overlap is checked against it (by record hash);
    without it, the built-in calibration records and a long run of generated ones are excluded."""
    exclude = calibration.record_hashes if calibration is not None else builtin_calibration_hashes()
    return build(tokenizer, split="evaluation", samples=samples, seq_len=seq_len, source=source,
                 exclude=exclude)


def builtin_calibration_hashes(generated: int = 4096) -> frozenset[str]:
    """Hashes of the built-in calibration records and the first `generated` generated ones."""
    hashes = {record_hash(r) for r in builtin_records("calibration")}
    stream = generated_text.records("calibration")
    hashes.update(record_hash(next(stream)) for _ in range(generated))
    return frozenset(hashes)


def _eos_id(tokenizer: Any) -> int | None:
    eos = getattr(tokenizer, "eos_token_id", None)
    if isinstance(eos, (list, tuple)):
        eos = eos[0] if eos else None
    return int(eos) if eos is not None else None
