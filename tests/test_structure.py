"""The package's structure, checked from the source: no import cycle between tupe's modules, no
module over 500 lines, function-level imports only for the optional or heavy dependencies (each
with a comment saying why), and library modules that log instead of printing to stderr."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "tupe"
MODULES = sorted(p for p in ROOT.rglob("*.py") if p.name != "__main__.py")
# Imported inside functions on purpose: optional extras, or heavy imports used on one path only.
LAZY_OK = ("matplotlib", "transformers", "torch.utils.tensorboard", "sklearn", "scipy", "torch._dynamo",
           "torch.nn.attention.flex_attention", "onnx", "onnxruntime", "sacremoses")
# Command-line modules: they print to the terminal (library code logs; see tupe/logs.py).
CLI = {"cli/convert.py", "cli/glue.py", "cli/predict.py", "preprocess/cli.py", "demo.py", "study.py", "report.py",
       "train/trainer.py", "train/validate.py", "inspection.py"}


def name_of(path: Path) -> str:
    parts = ["tupe", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


NAMES = {name_of(p): p for p in MODULES}


def resolve(module: str, node: ast.ImportFrom) -> list[str]:
    """The tupe modules an import statement loads (a name that is a submodule counts as one)."""
    if node.level:
        base = module.split(".")
        if NAMES[module].name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("tupe"):
        return []
    out = [target] if target in NAMES else []
    out += [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in NAMES]
    return out


def top_level_imports(path: Path) -> set[str]:
    module, edges = name_of(path), set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            edges.update(resolve(module, node))
        elif isinstance(node, ast.Import):
            edges.update(a.name for a in node.names if a.name in NAMES)
    return edges - {module}


def test_no_import_cycle():
    graph = {name_of(p): top_level_imports(p) for p in MODULES}
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == "open":
                cycle = stack[stack.index(n):] + [n]
                # a package importing its own submodules is how packages work, not a cycle
                if not all(b.startswith(a + ".") or a.startswith(b + ".") for a, b in zip(cycle, cycle[1:])):
                    pytest.fail("import cycle: " + " -> ".join(cycle))
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_size_and_imports(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 500, f"{path}: {len(text.splitlines())} lines; split it by concern"
    tree = ast.parse(text)
    lines = text.splitlines()
    for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        for node in ast.walk(fn):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                if getattr(node, "level", 0):
                    mod = "tupe." + (mod or "")      # the one optional subpackage: tupe.hf (transformers)
                where = f"{path}:{node.lineno}"
                assert mod and mod.startswith((*LAZY_OK, "tupe.hf")), \
                    f"{where}: import inside a function ({mod}); move it to the top of the module"
                assert "#" in lines[node.lineno - 1], f"{where}: say why {mod} is imported late"
    rel = str(path.relative_to(ROOT))
    if rel not in CLI:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                assert not any(k.arg == "file" for k in node.keywords), \
                    f"{path}:{node.lineno}: print(..., file=...) in library code; log through logging"
