"""Rules of the code base that a reader relies on, checked on the source (ast), so a regression fails here.

Before (the code at c988b55, when issue 12 was filed) each of these failed: `except ImportError` around
tui/quant_client.py's, core/cli/eval.py's, core/quant/job.py's and tui/views/performance.py's imports of our
own modules; core/quant/streamed.py subclassing `kl._StandIn` and calling `kl._swapped`, `kl._Replay`,
`kl._log_softmax`; sensitivity.py counting passes by assigning `kl.forward = counted`; two `fake_quantize`
functions (tensors.py, fakequant.py) and two readers of the model's `quant_predicate` (tensors.py,
inventory.py) that disagreed on a predicate that raises.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "cli", "tui")


def sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "data" not in p.parts)


def _ours(module: str | None, level: int) -> bool:
    return level > 0 or (module or "").split(".")[0] == "temper"


def _imports_ours(nodes: list[ast.stmt]) -> bool:
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.ImportFrom) and _ours(sub.module, sub.level):
                return True
            if isinstance(sub, ast.Import) and any(a.name.split(".")[0] == "temper" for a in sub.names):
                return True
    return False


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = [handler.type] if not isinstance(handler.type, ast.Tuple) else list(handler.type.elts)
    return any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names)


def test_no_import_error_fallback_for_our_own_modules() -> None:
    found = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Try) and _imports_ours(node.body) and \
                    any(_catches_import_error(h) for h in node.handlers):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == [], f"a fallback hides the day our own module breaks: {found}"


def _module_names(tree: ast.Module) -> set[str]:
    """Names bound to our own modules: `from . import kl`, `from .. import atomic`, `import temper.core.x as y`."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _ours(node.module, node.level) and node.module is None:
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.asname for a in node.names if a.asname and a.name.startswith("temper."))
    return names


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_uses_another_modules_private_names() -> None:
    found = []
    for path in sources():
        tree = ast.parse(path.read_text())
        modules = _module_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and _ours(node.module, node.level):
                found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {a.name}"
                          for a in node.names if _private(a.name)]
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    node.value.id in modules and _private(node.attr):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert found == [], f"give the other module a public interface instead: {found}"


def test_no_module_rebinds_another_modules_functions() -> None:
    """Counting forward passes by swapping `kl.forward` (gone: kl.PASSES counts them, in the open)."""
    found = []
    for path in sources():
        tree = ast.parse(path.read_text())
        modules = _module_names(tree)
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and \
                        target.value.id in modules:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} sets {target.value.id}.{target.attr}")
    assert found == [], found


def _defined(name: str) -> list[str]:
    return [f"{p.relative_to(ROOT)}" for p in sources() for node in ast.walk(ast.parse(p.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name]


def test_one_fake_quantization_function() -> None:
    assert _defined("fake_quantize") == ["core/quant/fakequant.py"]


def test_one_reader_of_the_models_quantization_rule() -> None:
    """Only core/quant/inventory.py asks the model's `quant_predicate`; tensors.quantizable delegates to it."""
    readers = sorted({str(p.relative_to(ROOT)) for p in sources()
                      for node in ast.walk(ast.parse(p.read_text()))
                      if isinstance(node, ast.Constant) and node.value == "quant_predicate"
                      or isinstance(node, ast.Attribute) and node.attr == "quant_predicate"})
    assert readers == ["core/quant/inventory.py"]


def test_one_pass_counter() -> None:
    assert _defined("PassCounter") == ["core/quant/reference.py"] and _defined("_count_passes") == []


def _is_log_softmax(node: ast.AST) -> bool:
    """`x - <m>.logsumexp(x, ..., keepdims=True)`: next-token log-probs, the start of a KL reference."""
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and isinstance(node.right, ast.Call) and \
        isinstance(node.right.func, ast.Attribute) and node.right.func.attr == "logsumexp" and \
        any(k.arg == "keepdims" for k in node.right.keywords)


def test_one_kl_reference() -> None:
    """Before (7a06319): core/quant/kl.py's `Reference` (top-k + tail for large vocabularies) and
    core/quant/evaluate.py's `Reference` (every position's fp32 log-probs, spilled to disk), and
    kv_sensitivity.py's and two benchmarks' own log-probs. Now the sensitivity pass, the held-out evaluation,
    the KV-cache calibration and the benchmarks share core/quant/reference.py: one class named *Reference in
    core/quant, one log-softmax in core/quant and docs/benchmarks."""
    quant = [p for p in sources() if p.relative_to(ROOT).parts[:2] == ("core", "quant")]
    benchmarks = sorted((ROOT / "docs" / "benchmarks").glob("*.py"))
    classes = sorted(f"{p.relative_to(ROOT)}:{n.name}" for p in quant for n in ast.walk(ast.parse(p.read_text()))
                     if isinstance(n, ast.ClassDef) and n.name.endswith("Reference"))
    assert classes == ["core/quant/reference.py:Reference"]
    softmaxes = sorted({f"{p.relative_to(ROOT)}" for p in quant + benchmarks
                        for n in ast.walk(ast.parse(p.read_text())) if _is_log_softmax(n)})
    assert softmaxes == ["core/quant/reference.py"], f"use reference.log_softmax / reference.Reference: {softmaxes}"


MAX_LINES = 400


def test_every_module_is_under_the_size_limit() -> None:
    """Files stay small and named for what they hold: split one that grows past MAX_LINES (core/, cli/, tui/).
    Before (7a06319): tui/views/chat.py 442, quantize.py 431, library.py 419, tui/app.py 404,
    tui/quant_client.py 403."""
    big = {f"{p.relative_to(ROOT)}": n for p in sources() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert big == {}, f"split these into modules named for what they hold: {big}"


def _is_app(node: ast.expr) -> bool:
    """`self.app`, `app`, `type(self.app)`, `self.app.<anything>`."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "type" and node.args:
        return _is_app(node.args[0])
    if isinstance(node, ast.Name):
        return node.id == "app"
    return isinstance(node, ast.Attribute) and (node.attr == "app" or _is_app(node.value))


def test_no_duck_typing_of_the_app() -> None:
    """Views reach the app typed (tui/typed_app.py): no `getattr(self.app, ...)` / `hasattr(type(self.app), ...)`."""
    found = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in ("getattr", "hasattr") and node.args and _is_app(node.args[0]):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == [], found


def test_the_command_line_lives_outside_core() -> None:
    """Before (c988b55): the CLI was core/cli/, which may not import Rich, so its tables and `\\r` progress were
    written by hand. Now it is the top-level `cli` package (installed as temper.cli): core/ parses no argv."""
    assert not (ROOT / "core" / "cli").exists()
    parsers = sorted(f"{p.relative_to(ROOT)}" for p in sources() if p.parts[len(ROOT.parts)] == "core"
                     for n in ast.walk(ast.parse(p.read_text()))
                     if isinstance(n, (ast.Import, ast.ImportFrom)) and
                     "argparse" in ([a.name for a in n.names] if isinstance(n, ast.Import) else [n.module]))
    assert parsers == [], parsers
    assert 'temper = "temper.cli.main:entry"' in (ROOT / "pyproject.toml").read_text()
