"""Reading a training checkpoint safely, and its integrity.

``torch.load(weights_only=True)`` with only ``argparse.Namespace`` and fairseq's three meter
classes (mapped to inert stand-ins) allowed: any other pickled object is refused before it can
run. Before unpickling, the file's SHA-256 is checked against the run's manifest
(``checkpoints.sha256``, written by every save) and a zip archive's members against what
``torch.save`` writes. See docs/checkpoints.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import re
import zipfile
from pathlib import Path

import torch

from .errors import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, PathLike


# --------------------------------------------------------------------------- safe unpickling
class _InertMeter:
    """Stand-in for fairseq's meter classes: a plain attribute bag, no behaviour."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__dict__})"


class AverageMeter(_InertMeter):
    pass


class TimeMeter(_InertMeter):
    pass


class StopwatchMeter(_InertMeter):
    pass


SAFE_GLOBALS = [
    argparse.Namespace,
    (AverageMeter, "fairseq.meters.AverageMeter"),
    (TimeMeter, "fairseq.meters.TimeMeter"),
    (StopwatchMeter, "fairseq.meters.StopwatchMeter"),
    # A loaded original checkpoint saved again pickles the stand-ins under their own names.
    AverageMeter, TimeMeter, StopwatchMeter,
]


# --------------------------------------------------------------------------- integrity
# A training run records the SHA-256 of every checkpoint it writes in SAVE_DIR/checkpoints.sha256
# (``sha256sum`` format, so ``sha256sum -c checkpoints.sha256`` checks them by hand too);
# ``read_checkpoint`` verifies a file listed there before unpickling anything.
MANIFEST = "checkpoints.sha256"
_ZIP_MEMBER = re.compile(r"(data\.pkl|\.format_version|\.storage_alignment|byteorder|version|"
                         r"\.data/serialization_id|\.data/version|data/\d+)")


def sha256_file(path: PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(directory: PathLike) -> dict[str, list[str]]:
    """name -> its recorded SHA-256 digests (two only while a save is replacing the file)."""
    path = Path(directory) / MANIFEST
    out: dict[str, list[str]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            digest, _, name = line.partition("  ")
            if len(digest) == 64 and name:
                out.setdefault(name, []).append(digest)
    return out


def write_manifest(directory: PathLike, entries: dict[str, list[str]]) -> None:
    """Atomically rewrite the manifest (entries whose file is gone are dropped)."""
    directory = Path(directory)
    text = "".join(f"{d}  {n}\n" for n, ds in sorted(entries.items()) if (directory / n).is_file() for d in ds)
    tmp = directory / f".{MANIFEST}.{os.getpid()}.part"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, directory / MANIFEST)
    except BaseException:
        tmp.unlink(missing_ok=True)      # a full disk leaves no partial temporary file behind
        raise


def verify_checksum(path: Path) -> None:
    recorded = read_manifest(path.parent).get(path.name)
    if recorded and sha256_file(path) not in recorded:
        raise CheckpointError(f"{path}: damaged: its SHA-256 differs from the one recorded when it was written "
                              f"({path.parent / MANIFEST}). If you replaced the file on purpose, delete its line "
                              f"there")


def check_archive(path: Path) -> None:
    """A zip checkpoint may hold only what torch.save writes (one folder: data.pkl, data/N, version...)."""
    if not zipfile.is_zipfile(path):
        return
    try:
        names = zipfile.ZipFile(path).namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{path}: damaged zip archive ({e})") from None
    prefixes = {n.split("/", 1)[0] for n in names}
    odd = [n for n in names if "/" not in n or not _ZIP_MEMBER.fullmatch(n.split("/", 1)[1])]
    if len(prefixes) != 1 or odd:
        raise CheckpointError(f"{path}: refused to load: the archive holds members torch.save does not write "
                              f"({', '.join((odd or sorted(prefixes))[:3])})")


def read_checkpoint(path: PathLike) -> dict:
    """``torch.load`` with weights_only=True and only the allow-listed globals, after checking the
    file's recorded checksum (if any) and the archive's members."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes): not a checkpoint")
    verify_checksum(path)
    check_archive(path)
    with open(path, "rb") as f:
        head = f.read(1024)
    if not zipfile.is_zipfile(path) and not head.startswith(b"\x80"):   # neither torch.save format
        kind = "a text file" if _is_text(head) else "not a torch file"
        raise CheckpointError(f"{path}: not a checkpoint ({kind}). Checkpoints are written by train.py, "
                              f"tupe-convert or the original code; raw text is preprocessed with tupe-preprocess")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's own message suggests weights_only=False: never pass that on; name what was refused
        refused = [line.split("WeightsUnpickler error:", 1)[-1].strip() for line in str(e).splitlines()
                   if "GLOBAL" in line or "Unsupported global" in line]
        if not refused:       # no forbidden object named: a damaged or foreign file
            raise CheckpointError(f"{path}: not a readable torch checkpoint (damaged, or not written by "
                                  f"torch.save)") from None
        raise CheckpointError(
            f"{path}: refused to load: the file contains a pickled object that is not a tensor, "
            f"a plain value, argparse.Namespace or a fairseq meter. Loading it could run code"
            + (f" ({refused[0]})" if refused else "")) from None
    except Exception as e:  # a truncated, foreign or corrupt file: torch raises many types
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({e})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a TUPE/fairseq checkpoint (no 'model' entry)")
    return state


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head


def resolve_checkpoint(path: PathLike) -> Path:
    """A file as is; in a training directory: checkpoint_best, else _last, else the only one."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint file or directory: {path}")
    for name in ("checkpoint_best.pt", "checkpoint_last.pt"):
        if (path / name).is_file():
            return path / name
    found = sorted(path.glob("checkpoint*.pt"))
    if len(found) == 1:
        return found[0]
    if not found and (path / "adapter_config.json").is_file():   # what peft's save_pretrained writes
        raise CheckpointError(f"{path} is a PEFT adapter (adapter_config.json), not a model: load its base model "
                              f"with the adapter and merge them (peft: PeftModel.from_pretrained(base, "
                              f"'{path}').merge_and_unload().save_pretrained(DIR), docs/huggingface.md), then use DIR")
    if not found:
        raise FileNotFoundError(f"{path}: no {CONFIG_FILE}/{WEIGHTS_FILE} and no checkpoint*.pt")
    raise CheckpointError(f"{path}: several checkpoints and no checkpoint_best.pt or "
                          f"checkpoint_last.pt; name one: {', '.join(p.name for p in found)}")
