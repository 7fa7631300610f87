"""Run transformers' own common model tests against tupe.hf (``make test-hf-suite``).

1. Fetches the source release of the installed transformers version from the package registry
   (``pip download --no-binary :all: --no-deps transformers==VERSION``) into ``.cache/hf-suite/``
   and unpacks its ``tests/`` (nothing of it is kept in this repository).
2. The release's tests import three helper modules that the source release does not ship
   (``tests/exporters/test_export.py``, ``tests/generation/test_utils.py``,
   ``tests/utils/test_configuration_utils.py``). They are written as stand-ins: an empty
   ``ExportTesterMixin`` and ``GenerationTesterMixin`` (so the torch.export tests and the
   ``generate`` tests do not run: TUPE is an encoder and has no ``generate``) and a short
   ``config_common_kwargs`` of our own (common settings with non-default values, for
   ``ConfigTester.check_config_arguments_init``).
3. Copies ``conformance/test_modeling_tupe.py`` (our ``TupeModelTester``, one test class per
   scheme: TUPE-R, TUPE-A, RoPE, ALiBi) to ``tests/models/tupe/`` and runs pytest there.
4. Writes ``conformance/results/hf_suite.json`` (per scheme: passed, failed, skipped, and every
   skip's reason) and prints a summary table. Exit status 1 when any test failed.

Options: ``--keep-going`` to run all, ``-k EXPR`` passed to pytest, ``--cache DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

STANDINS = {
    "tests/__init__.py": "",
    "tests/models/__init__.py": "",
    "tests/models/tupe/__init__.py": "",
    "tests/exporters/__init__.py": "",
    "tests/exporters/test_export.py": (
        '"""Stand-in (not in the source release): no torch.export tests."""\n\n\n'
        "class ExportTesterMixin:\n    pass\n"),
    "tests/generation/__init__.py": "",
    "tests/generation/test_utils.py": (
        '"""Stand-in (not in the source release): encoders have no generate tests."""\n\n\n'
        "class GenerationTesterMixin:\n    pass\n"),
    "tests/utils/__init__.py": "",
    "tests/utils/test_configuration_utils.py": (
        '"""Stand-in (not in the source release): common config settings with non-default values."""\n\n'
        "config_common_kwargs = {\n"
        '    "return_dict": False,\n    "output_hidden_states": True,\n    "dtype": "float16",\n'
        '    "chunk_size_feed_forward": 5,\n    "architectures": ["TupeForMaskedLM"],\n'
        '    "id2label": {0: "neg", 1: "pos"},\n    "label2id": {"neg": 0, "pos": 1},\n'
        '    "problem_type": "regression",\n    "tokenizer_class": "TupeTokenizer",\n'
        '    "bos_token_id": 0,\n    "eos_token_id": 2,\n    "pad_token_id": 1,\n'
        '    "tie_word_embeddings": True,\n'
        "}\n"),
    "pytest.ini": "[pytest]\naddopts = -p no:cacheprovider\nfilterwarnings =\n    ignore::pytest.PytestUnknownMarkWarning\n",
}


def fetch(version: str, cache: Path) -> Path:
    """The release's test tree under ``cache`` (downloaded and unpacked once per version)."""
    tree = cache / f"transformers-{version}"
    if (tree / "tests" / "test_modeling_common.py").is_file():
        return tree
    cache.mkdir(parents=True, exist_ok=True)
    print(f"fetching the transformers {version} source release ...", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
                    f"transformers=={version}", "-d", str(cache)], check=True)
    archive = next(cache.glob(f"transformers-{version}.tar.gz"))
    prefix = f"transformers-{version}/tests/"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        tar.extractall(cache, members=members, filter="data")
    return tree


def prepare(tree: Path) -> None:
    for rel, text in STANDINS.items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(text)
    shutil.copy(HERE / "test_modeling_tupe.py", tree / "tests" / "models" / "tupe" / "test_modeling_tupe.py")


def summarise(junit: Path) -> dict:
    per_class: dict = defaultdict(lambda: {"passed": 0, "failed": 0, "skipped": 0, "skips": Counter(), "failures": [],
                                                  "skipped_tests": {}})
    for case in ET.parse(junit).getroot().iter("testcase"):
        cls = case.get("classname", "").rsplit(".", 1)[-1]
        row = per_class[cls]
        failure = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped")
        if failure is not None:
            row["failed"] += 1
            row["failures"].append(f"{case.get('name')}: {(failure.get('message') or '').splitlines()[0][:300]}")
        elif skipped is not None:
            row["skipped"] += 1
            reason = (skipped.get("message") or "").replace("\n", " ")[:200]
            row["skips"][reason] += 1
            row["skipped_tests"].setdefault(reason, []).append(case.get("name"))
        else:
            row["passed"] += 1
    return {cls: {**row, "skips": dict(row["skips"].most_common())} for cls, row in sorted(per_class.items())}


def main(argv=None) -> int:
    import torch
    import transformers

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache", type=Path, default=ROOT / ".cache" / "hf-suite", help="where the release is unpacked")
    p.add_argument("-k", default=None, help="pytest -k expression (default: every test)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "hf_suite.json", help="the results file")
    args = p.parse_args(argv)

    tree = fetch(transformers.__version__, args.cache)
    prepare(tree)
    junit = tree / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "tests/models/tupe/test_modeling_tupe.py", "-q", "-rfE",
           f"--junitxml={junit}", "-W", "ignore::FutureWarning", "-W", "ignore::DeprecationWarning"]
    if args.k:
        cmd += ["-k", args.k]
    print(" ".join(cmd), flush=True)
    # RUN_SLOW: transformers' slow-marked common tests run too (those that need a GPU still skip).
    rc = subprocess.run(cmd, cwd=tree, env={**os.environ, "RUN_SLOW": "1"}).returncode
    if not junit.is_file():
        print(f"pytest wrote no results (exit {rc})", file=sys.stderr)
        return 2
    classes = summarise(junit)
    result = {"transformers": transformers.__version__, "torch": torch.__version__, "python": platform.python_version(),
              "selection": args.k, "classes": classes}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\ntransformers {transformers.__version__} common tests on tupe.hf ({args.out}):")
    print(f"{'class':<18} {'passed':>7} {'failed':>7} {'skipped':>8}")
    for cls, row in classes.items():
        print(f"{cls:<18} {row['passed']:>7} {row['failed']:>7} {row['skipped']:>8}")
    failed = sum(row["failed"] for row in classes.values())
    return 1 if failed or rc not in (0, 5) else 0


if __name__ == "__main__":
    sys.exit(main())
