"""A training run's checkpoints in its save directory: their names (fairseq's), the save
transaction that keeps the SHA-256 manifest true at every instant, and retention
(``--keep-interval-updates``, ``--keep-updates-list``). The trainer hands over a state dict and
what happened (end of epoch, best); this module decides the files.

Names: ``checkpoint{EPOCH}.pt`` at the end of every ``--save-interval`` epochs,
``checkpoint_{EPOCH}_{UPDATES}.pt`` every ``--save-interval-updates``, ``checkpoint_best.pt``,
``checkpoint_last.pt`` (each switched off by its ``--no-*-checkpoints`` flag).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import CheckpointError
from .safe import read_manifest, sha256_file, write_manifest

_INTERVAL = re.compile(r"checkpoint_(\d+)_(\d+)\.pt")


@dataclass
class SavePolicy:
    """The checkpoint flags of train.py (same names, same meaning)."""
    save_interval: int = 1
    save_interval_updates: int = 0
    keep_interval_updates: int = -1
    keep_updates_list: list[int] = field(default_factory=list)
    no_epoch_checkpoints: bool = False
    no_last_checkpoints: bool = False
    no_best_checkpoints: bool = False

    @classmethod
    def from_args(cls, args) -> "SavePolicy":
        return cls(**{f: getattr(args, f) for f in cls.__dataclass_fields__})

    def names(self, end_of_epoch: bool, epoch: int, num_updates: int, is_best: bool) -> list[str]:
        """The files one save writes (``epoch``: the epoch the save belongs to)."""
        names = []
        if end_of_epoch:
            if not self.no_epoch_checkpoints and epoch % self.save_interval == 0:
                names.append(f"checkpoint{epoch}.pt")
        elif self.save_interval_updates and num_updates % self.save_interval_updates == 0:
            names.append(f"checkpoint_{epoch}_{num_updates}.pt")
        if is_best and not self.no_best_checkpoints:
            names.append("checkpoint_best.pt")
        if not self.no_last_checkpoints:
            names.append("checkpoint_last.pt")
        return names


def describe_os_error(e: BaseException, directory: Path) -> str:
    """Words for a failed write: disk full, I/O error, permission, ... (torch's own writer
    reports a full disk as ``RuntimeError: [enforce fail at inline_container.cc] ...``)."""
    if isinstance(e, OSError) and e.errno is not None:
        name = errno.errorcode.get(e.errno, str(e.errno))
        hint = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                errno.EIO: "an input/output error (failing disk or network filesystem)",
                errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                errno.EROFS: "the filesystem is read-only"}.get(e.errno, e.strerror or "")
        return f"{hint} ({name})"
    try:
        free = shutil.disk_usage(directory).free
        space = f"{free / 2 ** 20:.0f} MiB free there now"
    except OSError:
        space = "free space unknown"
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    return f"the write failed ({first}); probably the disk is full: {space}"


def save_checkpoints(save_dir: Path, state: dict, names: list[str], num_updates: int) -> None:
    """Write ``state`` once and copy it to each of ``names``, every file replaced atomically.

    The manifest is written in three phases, so that a crash at any point leaves every file
    matching one of its recorded digests: (1) the new digest beside the old one, (2) the files
    replaced, (3) only the new digests. A failure (disk full, I/O error, ...) removes every
    temporary file, leaves the previous checkpoints and their digests as they were, and raises
    a CheckpointError in words."""
    save_dir.mkdir(parents=True, exist_ok=True)
    tmp = save_dir / f".tmp-{os.getpid()}.pt"
    parts = [save_dir / f".{name}.part" for name in names]
    done, before, digest = [], read_manifest(save_dir), None
    try:
        torch.save(state, tmp)
        digest = sha256_file(tmp)
        write_manifest(save_dir, {**before, **{n: before.get(n, [])[-1:] + [digest] for n in names}})
        for name, part in zip(names, parts):
            shutil.copyfile(tmp, part)
            os.replace(part, save_dir / name)
            done.append(name)
        write_manifest(save_dir, {**before, **{n: [digest] for n in names}})
    except (OSError, RuntimeError) as e:
        for p in (tmp, *parts):
            p.unlink(missing_ok=True)
        try:       # each file's recorded digest: the new one where it was replaced, else as before
            write_manifest(save_dir, {**before, **{n: [digest] for n in done}})
        except OSError:
            pass   # write_manifest removed its own temporary file; the phase-1 manifest still holds
        kept = ", ".join(n for n in ("checkpoint_last.pt", "checkpoint_best.pt")
                         if (save_dir / n).is_file() and n not in done) or "none yet"
        raise CheckpointError(
            f"could not save {', '.join(names)} in {save_dir} at update {num_updates}: "
            f"{describe_os_error(e, save_dir)}. Nothing is damaged: the previous checkpoints are as "
            f"they were ({kept}; {', '.join(done) or 'none'} written at this update), temporary files removed. "
            f"Free space or fix the directory, then rerun the same command to resume") from None
    tmp.unlink()


def apply_retention(save_dir: Path, policy: SavePolicy) -> list[Path]:
    """Delete all but the newest ``keep_interval_updates`` interval checkpoints (those in
    ``keep_updates_list`` are kept) and drop them from the manifest; returns what was deleted."""
    if policy.keep_interval_updates <= 0:
        return []
    found = sorted(((int(m.group(2)), p) for p in save_dir.glob("checkpoint_*_*.pt")
                    if (m := _INTERVAL.fullmatch(p.name))), reverse=True)
    removed = [p for updates, p in found[policy.keep_interval_updates:] if updates not in set(policy.keep_updates_list)]
    for p in removed:
        p.unlink()
    if removed:
        write_manifest(save_dir, read_manifest(save_dir))
    return removed
