"""`import tupe` works without the optional extras; tupe.hf says what to install."""

import subprocess
import sys

BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("transformers", "peft", "onnx", "onnxruntime", "accelerate"):
            raise ImportError(f"blocked {name}")
sys.meta_path.insert(0, Block())
"""


def run(code):
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True, timeout=120)


def test_import_tupe_without_transformers():
    proc = run("import tupe, tupe.cli.convert, tupe.train.trainer; print(tupe.TupeModel.__name__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "TupeModel"


def test_tupe_hf_without_transformers_names_the_extra():
    proc = run("import tupe.hf")
    assert proc.returncode != 0
    assert "pip install 'tupe[hf]'" in proc.stderr


def test_convert_hf_without_transformers_is_a_clear_error(tmp_path):
    from tests.conftest import FIXTURE

    proc = run(f"from tupe.cli.convert import main; raise SystemExit(main([{str(FIXTURE / 'checkpoint.pt')!r}, "
               f"{str(tmp_path / 'out')!r}, '--hf']))")
    assert proc.returncode == 1
    assert "tupe-convert: error:" in proc.stderr and "tupe[hf]" in proc.stderr
    assert not (tmp_path / "out").exists()
