"""Untrusted checkpoints: classic pickle payloads anywhere in the file, an archive with an extra
member, and safetensors files whose header lies. Every one is refused before anything runs;
each test checks that its payload's side effect did not happen."""

import builtins
import json
import os
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

import tupe
from tests.train.conftest import tiny_args
from tupe.checkpoint import CheckpointError, read_checkpoint
from tupe.cli.convert import main as convert
from tupe.train.trainer import main as train

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "tupe_r_small" / "checkpoint.pt"


class Payload:
    """Unpickling this calls ``fn(*args)``: the classic __reduce__ attack."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)

    def __call__(self, *args):          # callable, so that a Payload may be the function of another
        raise AssertionError("never called while pickling")


def payloads(marker: Path):
    m = str(marker)
    return {
        "os.system": Payload(os.system, f"touch {m}"),
        "builtins.eval": Payload(builtins.eval, f"open({m!r}, 'w').write('x')"),
        "builtins.exec": Payload(builtins.exec, f"import pathlib; pathlib.Path({m!r}).touch()"),
        "subprocess.Popen": Payload(subprocess.Popen, ["touch", m]),
        # a nested gadget: __import__("os"), then getattr(os, "system")("touch ...")
        "builtins.getattr": Payload(Payload(getattr, Payload(__import__, "os"), "system"), f"touch {m}"),
    }


PLACES = {
    "top-level": lambda state, p: state.__setitem__("payload", p),
    "extra_state": lambda state, p: state["extra_state"].__setitem__("payload", p),
    "args-namespace": lambda state, p: setattr(state["args"], "data", p),
    "optimizer-state": lambda state, p: state.__setitem__("last_optimizer_state", {"state": {0: {"exp_avg": p}},
                                                                                   "param_groups": []}),
    "model-entry": lambda state, p: state["model"].__setitem__("decoder.evil", p),
}


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "builtins.exec", "subprocess.Popen", "builtins.getattr"])
@pytest.mark.parametrize("place", list(PLACES))
def test_pickle_payloads_are_refused_and_not_run(tmp_path, kind, place):
    marker = tmp_path / "pwned"
    state = read_checkpoint(FIXTURE)
    PLACES[place](state, payloads(marker)[kind])
    torch.save(state, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused to load") as e:
        tupe.load_model(tmp_path / "evil.pt")
    assert not marker.exists()
    assert "weights_only" not in str(e.value) and "will likely succeed" not in str(e.value)   # never advised


def test_legacy_format_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    state = read_checkpoint(FIXTURE)
    state["payload"] = Payload(os.system, f"touch {marker}")
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError):
        tupe.load_model(tmp_path / "legacy.pt")
    assert not marker.exists()


def test_payload_through_every_entry_point(tmp_path, data_dir, capsys):
    marker = tmp_path / "pwned"
    state = read_checkpoint(FIXTURE)
    state["extra_state"]["payload"] = Payload(os.system, f"touch {marker}")
    run = tmp_path / "run"
    run.mkdir()
    torch.save(state, run / "checkpoint_last.pt")
    shutil.copy(FIXTURE.parent / "dict.txt", run / "dict.txt")
    assert convert([str(run / "checkpoint_last.pt"), str(tmp_path / "own")]) == 1        # tupe-convert
    with pytest.raises(CheckpointError):
        tupe.from_pretrained(run)                                                        # the hub
    assert train(tiny_args(data_dir, tmp_path / "t", "--restore-file", str(run / "checkpoint_last.pt"))) == 1
    assert "refused to load" in capsys.readouterr().err                                  # train.py
    assert not marker.exists() and not (tmp_path / "own").exists()


def test_zip_with_an_extra_member_is_refused(tmp_path):
    evil = tmp_path / "extra.pt"
    shutil.copy(FIXTURE, evil)
    with zipfile.ZipFile(evil, "a") as z:
        prefix = z.namelist()[0].split("/")[0]
        z.writestr(f"{prefix}/payload.py", "import os; os.system('touch pwned')")
    with pytest.raises(CheckpointError, match="members torch.save does not write.*payload.py"):
        read_checkpoint(evil)
    other = tmp_path / "two_roots.pt"
    shutil.copy(FIXTURE, other)
    with zipfile.ZipFile(other, "a") as z:
        z.writestr("elsewhere/data.pkl", b"\x80\x02}q\x00.")
    with pytest.raises(CheckpointError, match="members torch.save does not write"):
        read_checkpoint(other)


def safetensors_dir(tmp_path) -> Path:
    model = tupe.load_model(FIXTURE)
    out = tmp_path / "own"
    tupe.save_pretrained(model, out)
    return out


def rewrite_header(path: Path, edit) -> None:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8: 8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])


def first_tensor(header):
    return next(k for k in header if k != "__metadata__")


@pytest.mark.parametrize("lie", ["shape-too-big", "offsets-past-the-end", "overlapping-offsets", "header-length",
                                 "not-json", "dtype"])
def test_safetensors_whose_header_lies_is_refused(tmp_path, lie):
    out = safetensors_dir(tmp_path)
    weights = out / "model.safetensors"
    if lie == "shape-too-big":
        rewrite_header(weights, lambda h: h[first_tensor(h)].__setitem__("shape", [10 ** 6, 10 ** 3]))
    elif lie == "offsets-past-the-end":
        rewrite_header(weights, lambda h: h[first_tensor(h)].__setitem__("data_offsets", [0, 10 ** 12]))
    elif lie == "overlapping-offsets":
        def overlap(h):
            names = [k for k in h if k != "__metadata__"]
            h[names[1]]["data_offsets"] = h[names[0]]["data_offsets"]
        rewrite_header(weights, overlap)
    elif lie == "header-length":
        data = weights.read_bytes()
        weights.write_bytes(struct.pack("<Q", 2 ** 40) + data[8:])
    elif lie == "not-json":
        data = weights.read_bytes()
        (n,) = struct.unpack("<Q", data[:8])
        weights.write_bytes(data[:8] + b"{" * n + data[8 + n:])
    else:
        rewrite_header(weights, lambda h: h[first_tensor(h)].__setitem__("dtype", "F64"))
    with pytest.raises(CheckpointError, match="model.safetensors: not a valid safetensors file"):
        tupe.load_model(out)
