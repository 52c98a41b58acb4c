"""The package's shape: layers in order, no import cycles, commands independent of each other, a
light CLI start.

Imports are read from the source (every ``import`` and ``from actionclip...`` statement, including
those inside functions), so a cycle hidden behind a lazy import is caught too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "actionclip"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("actionclip"):
                targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


# The library's layers, lowest first (docs/ARCHITECTURE.md draws them): a module imports only from its
# own layer or those below. ``actionclip`` itself (the package facade) names its public objects as
# strings and imports nothing, so any layer may read ``actionclip.__version__``.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("", "errors", "files", "choices", "runtime", "extras", "chatter")),
    ("media", ("video", "text")),
    ("model", ("model",)),
    ("families", ("families",)),
    ("loading", ("loading",)),
    ("workflows", ("workflows", "temporal", "pipeline", "results", "workers")),
    ("applications", ("collection", "training", "evaluation", "onnx", "bench", "serve", "_dev")),
    ("api", ("api",)),
    ("cli", ("cli", "__main__")),
]


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for rank, (_, folders) in enumerate(LAYERS):
        if top in folders:
            return rank
    raise AssertionError(f"{module}: in no layer of LAYERS (add its folder)")


def _upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} ({LAYERS[_layer(m)][0]}) -> {t} ({LAYERS[_layer(t)][0]})"
                  for m, targets in graph.items() for t in targets if _layer(t) > _layer(m))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_layer_check_finds_an_upward_import():
    graph = {"actionclip.model.base": {"actionclip.temporal.timeline", "actionclip.text.labels"},
             "actionclip.temporal.timeline": set(), "actionclip.text.labels": set()}
    assert _upward(graph) == ["actionclip.model.base (model) -> actionclip.temporal.timeline (workflows)"]


def test_every_module_imports_only_from_its_layer_or_below():
    assert _upward(_import_graph()) == []


def test_no_import_cycles():
    assert _cycles(_import_graph()) == []


def test_commands_do_not_import_each_other_and_the_library_does_not_import_the_cli():
    graph = _import_graph()
    for module, targets in graph.items():
        if module.startswith("actionclip.cli.commands."):
            assert not [t for t in targets if t.startswith("actionclip.cli.commands.")], module
        elif not module.startswith("actionclip.cli") and module != "actionclip.__main__":
            assert not [t for t in targets if t.startswith("actionclip.cli")], module


def test_public_api_is_not_the_test_helpers():
    import actionclip

    assert not any(name.startswith("_") or "test" in name.lower() for name in actionclip.__all__ if name != "__version__")


def test_help_imports_neither_torch_nor_numpy():
    code = ("import sys\nfrom actionclip.cli import build_parser\nbuild_parser().format_help()\n"
            "print(sorted(m for m in ('torch', 'numpy', 'av') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
