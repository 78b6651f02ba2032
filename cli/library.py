"""`temper library ...`: the Library tab's headless twin."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..core.errors import TemperError
from ..core.library.format import human_bytes, human_params
from ..core.library.model_info import ModelInfo
from .output import print_error, print_table
from .progress import ProgressView

SORTS = {
    "name": lambda m: m.name.lower(),
    "size": lambda m: -m.size_bytes,
    "params": lambda m: -m.parameters,
    "bpw": lambda m: -m.bits_per_weight,
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("library", help="list, inspect, import, download and delete models")
    cmds = p.add_subparsers(dest="library_command", metavar="ACTION", required=True)

    ls = cmds.add_parser("list", help="models on this machine (HF cache, your folders, temper's models)")
    ls.add_argument("--json", action="store_true", help="one JSON array, for scripts")
    ls.add_argument("--sort", choices=sorted(SORTS), default="name")
    ls.add_argument("--filter", default="", help="keep models whose name, path, arch or quant contains TEXT")
    ls.add_argument("--folder", action="append", default=[], help="also scan this folder (repeatable)")
    ls.set_defaults(func=cmd_list)

    show = cmds.add_parser("show", help="everything the Library knows about one model")
    show.add_argument("model", help="folder, Hub id or name")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)

    add = cmds.add_parser("add-folder", help="scan DIR for models from now on")
    add.add_argument("folder")
    add.set_defaults(func=cmd_add_folder)

    rm = cmds.add_parser("remove-folder", help="stop scanning DIR (deletes nothing)")
    rm.add_argument("folder")
    rm.set_defaults(func=cmd_remove_folder)

    imp = cmds.add_parser("import", help="import a GGUF file as an MLX model folder")
    imp.add_argument("file", help="a .gguf file (llama architecture)")
    imp.add_argument("--name", help="folder name under temper's models folder (default: the file name)")
    imp.add_argument("--dequantize", action="store_true", help="write plain floats instead of keeping Q4/Q8")
    imp.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"],
                     help="float type for scales and unquantized tensors (auto: float16 on GPU, float32 on CPU)")
    imp.add_argument("--force", action="store_true", help="replace an existing folder of that name")
    imp.set_defaults(func=cmd_import)

    fc = cmds.add_parser("float-copy", help="write a float copy of a quantized model beside it (to quantize it)")
    fc.add_argument("model", help="a quantized model folder or Hub id")
    fc.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    fc.add_argument("--force", action="store_true", help="replace a copy made before")
    fc.set_defaults(func=cmd_float_copy)

    search = cmds.add_parser("search", help="search the Hugging Face Hub")
    search.add_argument("query")
    search.add_argument("--all", action="store_true", help="not only MLX-format repositories")
    search.add_argument("--limit", type=int, default=20)
    search.set_defaults(func=cmd_search)

    dl = cmds.add_parser("download", help="download a model from the Hub into the HF cache")
    dl.add_argument("repo_id")
    dl.set_defaults(func=cmd_download)

    de = cmds.add_parser("delete", help="delete a model from disk")
    de.add_argument("model", help="folder, Hub id or name")
    de.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    de.set_defaults(func=cmd_delete)


def as_dict(m: ModelInfo) -> dict[str, object]:
    return {
        "name": m.name, "path": str(m.path), "source": m.source, "architecture": m.architecture,
        "parameters": m.parameters, "size_bytes": m.size_bytes, "quantization": m.quantization,
        "bits_per_weight": round(m.bits_per_weight, 4), "vision": m.vision, "error": m.error,
        "details": m.details,
    }


def matches(m: ModelInfo, text: str) -> bool:
    text = text.lower()
    return not text or any(text in str(v).lower() for v in (m.name, m.path, m.architecture, m.quantization, m.source))


def _row(m: ModelInfo) -> list[str]:
    if m.error:
        return [m.name, m.architecture, "-", human_bytes(m.size_bytes), "error", "-", "-", m.source]
    return [m.name, m.architecture, human_params(m.parameters), human_bytes(m.size_bytes), m.quantization,
            f"{m.bits_per_weight:.2f}", "yes" if m.vision else "no", m.source]


def cmd_list(args: argparse.Namespace) -> int:
    from ..core.library.scan import scan

    models = [m for m in scan(args.folder) if matches(m, args.filter)]
    models.sort(key=SORTS[args.sort])
    if args.json:
        print(json.dumps([as_dict(m) for m in models], indent=2))
        return 0
    if not models:
        print("no models found (add a folder: temper library add-folder DIR; or run: temper demo --no-launch)")
        return 0
    print_table(["NAME", "ARCH", "PARAMS", "SIZE", "QUANT", "BPW", "VISION", "SOURCE"], [_row(m) for m in models],
                right={2, 3, 5})
    for m in models:
        if m.error:
            print_error(f"{m.name}: {m.error}")
    return 0


def _find(query: str) -> ModelInfo:
    from ..core.library.scan import find

    info = find(query)
    if info is None:
        raise TemperError(f"{query}: no such model in the Library (see: temper library list)")
    return info


def cmd_show(args: argparse.Namespace) -> int:
    m = _find(args.model)
    if args.json:
        print(json.dumps(as_dict(m), indent=2))
        return 2 if m.error else 0
    rows = [["name", m.name], ["path", str(m.path)], ["source", m.source], ["architecture", m.architecture],
            ["parameters", f"{m.parameters:,} ({human_params(m.parameters)})"],
            ["size on disk", f"{human_bytes(m.size_bytes)} ({m.size_bytes:,} bytes)"],
            ["quantization", m.quantization], ["bits per weight", f"{m.bits_per_weight:.3f} (all tensor bytes x 8 / params)"],
            ["vision", "yes" if m.vision else "no"]]
    for key, value in m.details.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} x{v}" for k, v in value.items()) or "-"
        if value is not None:
            rows.append([str(key).replace("_", " "), str(value)])
    print_table(None, rows)
    if m.error:
        raise TemperError(m.error)
    return 0


def cmd_add_folder(args: argparse.Namespace) -> int:
    from ..core.library.folders import add_folder
    from ..core.library.gguf_files import gguf_files
    from ..core.library.scan import model_folders

    path = add_folder(args.folder)
    found, ggufs = list(model_folders(path)), gguf_files(path)
    print(f"added {path}: {len(found)} model folder{'s' if len(found) != 1 else ''}, "
          f"{len(ggufs)} GGUF file{'s' if len(ggufs) != 1 else ''} (import with: temper library import FILE)")
    return 0


def cmd_remove_folder(args: argparse.Namespace) -> int:
    from ..core.library.folders import remove_folder

    if not remove_folder(args.folder):
        raise TemperError(f"{args.folder} is not one of your Library folders")
    print(f"removed {args.folder} from the Library folders (nothing deleted)")
    return 0


def quiet_transformers() -> None:
    """transformers says "PyTorch was not found" on import: true, and irrelevant here (MLX does the math)."""
    import os

    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def cmd_import(args: argparse.Namespace) -> int:
    import time

    quiet_transformers()
    from ..core.library.gguf_import import import_gguf
    from ..core.library.inspect import inspect_model

    start = time.perf_counter()

    with ProgressView() as show:
        out = import_gguf(Path(args.file), name=args.name, dequantize=args.dequantize, dtype=args.dtype,
                          overwrite=args.force, progress=lambda message, fraction: show(
                              "import", round(fraction * 1000), 1000, message))
    m = inspect_model(out, source="temper")
    print(f"imported {Path(args.file).name} -> {out} in {time.perf_counter() - start:.1f} s: "
          f"{human_params(m.parameters)} params, {m.quantization}, {m.bits_per_weight:.2f} bpw, "
          f"{human_bytes(m.size_bytes)}")
    actions = json.loads((out / "config.json").read_text()).get("temper", {}).get("tensors", {})
    print("tensors: " + ", ".join(f"{n} {what}" for what, n in actions.items()))
    return 0


def cmd_float_copy(args: argparse.Namespace) -> int:
    quiet_transformers()
    from ..core.engine.loader import resolve
    from ..core.library.float_copy import float_copy
    from ..core.library.inspect import inspect_model

    out = float_copy(resolve(args.model), dtype=args.dtype, overwrite=args.force)
    m = inspect_model(out, source="temper")
    print(f"float copy -> {out}: {human_params(m.parameters)} params, {args.dtype}, {human_bytes(m.size_bytes)}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from ..core.library.hub import search

    found = search(args.query, limit=args.limit, mlx_only=not args.all)
    if not found:
        print(f"no {'MLX ' if not args.all else ''}models match {args.query!r}")
        return 0
    print_table(["ID", "DOWNLOADS", "LIKES", "TASK"],
                [[h.id, f"{h.downloads:,}", str(h.likes), h.pipeline_tag or "-"] for h in found], right={1, 2})
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from ..core.library.hub import download

    with ProgressView() as show:
        path = download(args.repo_id, progress=lambda done, total, name: show(
            "download MB", done // 10**6, total // 10**6 or None, name))
    print(f"downloaded {args.repo_id} -> {path}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from ..core.library.delete import delete_model

    m = _find(args.model)
    if not args.yes:
        if not sys.stdin.isatty():
            raise TemperError("refusing to delete without confirmation: pass --yes")
        answer = input(f"delete {m.name} ({human_bytes(m.size_bytes)}) at {m.path}? [y/N] ")
        if answer.strip().lower() not in {"y", "yes"}:
            print("nothing deleted")
            return 1
    freed = delete_model(m.path)
    print(f"deleted {m.name} ({human_bytes(freed)} freed)")
    return 0
