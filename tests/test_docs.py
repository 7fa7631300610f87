"""The documentation is tested as code: the README's walkthrough (the blocks marked
``walkthrough``) runs as written, at tiny sizes (the substitutions below, each of which must
still match the README), every relative link of the README and docs/ points at a file, and their
python blocks compile and name what exists (the command lines are parsed: test_cli_help.py)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# Tiny sizes for the test; the README shows the real ones. Each pattern must occur.
TINY = [("tupe-demo --sample-data my_data", "tupe-demo --sample-data my_data --sample-lines 5000"),
        ("--arch bert_small", "--arch bert_tiny"),
        ("--warmup-updates 30 --total-num-update 300 --max-update 300",
         "--warmup-updates 3 --total-num-update 20 --max-update 20"),
        ("--bpe-merges 4000", "--bpe-merges 500"),
        ("--max-epoch 1", "--max-epoch 1 --max-update 15")]


def blocks(text: str, tag: str) -> list[tuple[str, str]]:
    """(language, code) of the fenced blocks whose info string carries ``tag``."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w+) " + tag + r"\n(.*?)```", text, re.S)]


def test_readme_is_a_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, len(lines)
    assert blocks(README.read_text(), "walkthrough"), "no walkthrough blocks"


@pytest.mark.parametrize("page", [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "CHANGELOG.md"],
                         ids=lambda p: p.name)
def test_relative_links_point_at_files(page):
    for target in re.findall(r"\]\(([^)#\s]+)\)", page.read_text()):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name}: link to missing {target}"


def test_walkthrough_runs_as_written(tmp_path):
    text = README.read_text()
    for old, new in TINY:
        assert old in text, f"the README no longer says {old!r}: update tests/test_docs.py"
        text = text.replace(old, new)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "2"}
    outputs = []
    for i, (lang, code) in enumerate(blocks(text, "walkthrough")):
        if lang == "bash":
            cmd = ["bash", "-euo", "pipefail", "-c", code]
        else:
            cmd = [sys.executable, "-c", code]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"block {i} ({lang}) failed:\n{code}\n--- stderr:\n{proc.stderr[-3000:]}"
        outputs.append(proc.stdout)
    assert (tmp_path / "runs" / "my-pre" / "checkpoint_best.pt").is_file()
    assert (tmp_path / "runs" / "my-ft" / "checkpoint_best.pt").is_file()
    assert (tmp_path / "hf" / "living" / "tokenizer_config.json").is_file()
    predictions = [line.split("\t") for line in outputs[3].splitlines() if "\t" in line]
    assert len(predictions) == 3 and all(label in ("living", "other") and 0.5 <= float(p) <= 1
                                         for label, p in predictions), outputs[3]
    assert "'label': " in outputs[4] and ("'living'" in outputs[4] or "'other'" in outputs[4]), outputs[4]


def test_python_blocks_compile_and_name_what_exists():
    """Every python block of the README and docs/ is valid Python, and every ``tupe.X`` /
    ``from tupe... import X`` it uses exists (a renamed function fails here, not for a reader)."""
    import ast
    import importlib

    import tupe

    made_by = {"tupe.from_pretrained": tupe.hub.TupeHub, "tupe.load_model": tupe.TupeModel}
    checked = 0
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for code in re.findall(r"```python[^\n]*\n(.*?)```", page.read_text(), re.S):
            tree = ast.parse(code, filename=page.name)
            # names bound to what tupe.from_pretrained / tupe.load_model return: their methods are checked too
            kinds = {t.id: made_by[ast.unparse(n.value.func)] for n in ast.walk(tree) if isinstance(n, ast.Assign)
                     and isinstance(n.value, ast.Call) and ast.unparse(n.value.func) in made_by
                     for t in n.targets if isinstance(t, ast.Name)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in kinds:
                    assert hasattr(kinds[node.value.id], node.attr), f"{page.name}: {node.value.id}.{node.attr}"
                    checked += 1
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tupe"):
                    module = importlib.import_module(node.module)
                    for alias in node.names:
                        assert hasattr(module, alias.name), f"{page.name}: from {node.module} import {alias.name}"
                        checked += 1
                elif isinstance(node, ast.Attribute) and isinstance(node.value, (ast.Name, ast.Attribute)):
                    owner = ast.unparse(node.value)
                    if owner in ("tupe", "tupe.hf"):
                        assert hasattr(importlib.import_module(owner), node.attr), f"{page.name}: {owner}.{node.attr}"
                        checked += 1
    assert checked >= 12, checked
