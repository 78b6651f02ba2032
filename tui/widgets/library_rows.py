"""What the Library table shows: its columns and sort keys, a model's row cells, the details pane's text
and the filter's match rule (pure functions of a ModelInfo; the tab itself is tui/views/library.py)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from temper.core.library.format import home_short, human_bytes, human_params
from temper.core.library.model_info import ModelInfo
from temper.core.library.scan import hf_cache_dir
from temper.core.paths import models_dir

# (key, header, sort key: larger first for numbers)
COLUMNS = [
    ("name", "Name", lambda m: m.name.lower()),
    ("arch", "Arch", lambda m: m.architecture),
    ("params", "Params", lambda m: -m.parameters),
    ("size", "Size", lambda m: -m.size_bytes),
    ("quant", "Quant", lambda m: m.quantization),
    ("bpw", "BPW", lambda m: -m.bits_per_weight),
    ("vision", "Vis", lambda m: not m.vision),
    ("source", "Source", lambda m: m.source),
]
SORT_KEYS = [c[0] for c in COLUMNS]
LARGEST_FIRST = {"params", "size", "bpw"}  # their natural order is descending


def display_path(path: Path) -> str:
    """Short, stable spelling of a model's location: relative to temper's models, the HF cache or home."""
    for root, label in ((models_dir(), "temper:"), (hf_cache_dir(), "hf-cache:")):
        try:
            return f"{label}{path.relative_to(root)}"
        except ValueError:
            continue
    return home_short(path)


def short(text: str, width: int = 30) -> str:
    """Cut in the middle: a quantized copy's name differs from its source's at the end (…-temper-uniform-8)."""
    if len(text) <= width:
        return text
    tail = (width - 1) // 2
    return text[: width - 1 - tail] + "…" + text[-tail:]


def row_cells(m: ModelInfo, name_width: int = 30) -> tuple[str, ...]:
    """The table's cells; `name_width`: the longest name shown whole (26 keeps an 80-column table within the
    screen: Name, Arch, Params, Size, Quant and BPW with their gaps take 78 columns then)."""
    if m.error:
        return (short(m.name, name_width), m.architecture, "-", human_bytes(m.size_bytes), "broken", "-", "-", m.source)
    return (short(m.name, name_width), m.architecture, human_params(m.parameters), human_bytes(m.size_bytes), m.quantization,
            f"{m.bits_per_weight:.2f}", "yes" if m.vision else "no", m.source)


def details_text(m: ModelInfo | None) -> str:
    if m is None:
        return "No model selected. r rescans; s searches the Hub; `temper demo` prepares a small model."
    lines = [f"[b]{m.name}[/b]  {display_path(m.path)}"]
    if m.error:
        lines.append(f"[red]error:[/red] {m.error}")
        return "\n".join(lines)
    d = m.details
    if d.get("gguf"):
        types = d.get("gguf_types") or {}
        total = sum(types.values()) or 1
        mix = ", ".join(f"{t} {n / total:.0%}" for t, n in list(types.items())[:4])
        lines.append(f"GGUF file · {m.architecture} · {m.parameters:,} params · {human_bytes(m.size_bytes)}")
        lines.append(f"{m.bits_per_weight:.3f} real bits/weight · {mix}")
        lines.append("[dim]i imports it as an MLX model (Q4_0/Q4_1/Q8_0 kept, others requantized)[/dim]")
        return "\n".join(lines)
    lines.append(f"{m.architecture} · {m.parameters:,} params · {m.details.get('layers') or '?'} layers · "
                 f"hidden {d.get('hidden_size') or '?'} · vocab {d.get('vocab_size') or '?'}")
    lines.append(f"{m.quantization} · {m.bits_per_weight:.3f} real bits/weight · floats {d.get('dtype', '?')} · "
                 f"{d.get('quantized_tensors', 0)}/{d.get('tensors', '?')} tensors quantized")
    mix = d.get("quant_mix") or {}
    mix_text = f" · mix {', '.join(f'{k}×{v}' for k, v in list(mix.items())[:3])}" if len(mix) > 1 else ""
    lines.append(f"{human_bytes(m.size_bytes)} on disk · {d.get('files', '?')} file(s) · vision "
                 f"{'yes' if m.vision else 'no'} · {m.source}{mix_text}")
    lines.append("[dim]c chat · q quantize · d delete · / filter · o sort · s Hub[/dim]")
    return "\n".join(lines)


def header_label(text: str) -> Text:
    """A column header as Rich Text, as DataTable column labels are."""
    return Text(text)


def matches(m: ModelInfo, text: str) -> bool:
    return not text or any(text in str(v).lower() for v in (m.name, m.architecture, m.quantization, m.source,
                                                            display_path(m.path)))
