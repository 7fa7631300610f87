"""Shared plumbing of the preprocessing pipelines: worker pools, atomic output, binarizing."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, TypeVar

import numpy as np
from tqdm import tqdm

from ..data.dictionary import Dictionary
from ..data.indexed_dataset import IndexedDatasetBuilder, best_fitting_dtype

T = TypeVar("T")
R = TypeVar("R")


class PreprocessError(RuntimeError):
    """A fatal problem with the input; the message names the file (and line)."""


def _worker_init(initializer: Optional[Callable], initargs: tuple) -> None:
    """A pool worker leaves signals to the main process: Ctrl-C (sent to the whole process group)
    is ignored here, SIGTERM (how the pool stops its workers) kills as by default; the main
    process stops the pool. Without this every worker printed its own KeyboardInterrupt trace."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if initializer is not None:
        initializer(*initargs)


def parallel_map(fn: Callable[[T], R], items: Iterable[T], workers: int,
                 initializer: Optional[Callable] = None, initargs: tuple = ()) -> Iterator[R]:
    """Ordered map over ``items`` in ``workers`` processes (in-process when workers <= 1)."""
    if workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        yield from map(fn, items)
        return
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    # Bounded in-flight work (Pool.imap would read the whole input ahead into memory).
    pool = mp.get_context(method).Pool(workers, initializer=_worker_init, initargs=(initializer, initargs))
    try:
        pending: deque = deque()
        for item in items:
            pending.append(pool.apply_async(fn, (item,)))
            if len(pending) >= 4 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
        # Graceful shutdown: terminate() can kill a worker while it holds the task queue's lock
        # and leave the other one waiting on it forever.
        pool.close()
        pool.join()
    finally:
        pool.terminate()


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@contextmanager
def atomic_directory(dest: Path, force: bool = False, inputs: Iterable[Path] = ()):
    """Yield a temporary directory beside ``dest``; it becomes ``dest`` only on success, so a
    failed run never leaves a partial output that looks complete. ``dest`` is replaced whole,
    so an input inside it (``inputs``: what the command reads) is refused: --force deleted it."""
    dest = Path(dest)
    for path in inputs:
        if path is not None and Path(path).resolve().is_relative_to(dest.resolve()):   # dest itself or below it
            raise PreprocessError(f"{path} is inside the output directory {dest}, which is replaced whole: "
                                  f"choose another --destdir")
    if dest.exists() and any(dest.iterdir()) and not force:
        raise PreprocessError(f"{dest}: output directory exists and is not empty (use --force to replace it)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def binarize_lines(lines: Iterable[str], dictionary: Dictionary, prefix: Path,
                   append_eos: bool = True) -> dict[str, int]:
    """Encode whitespace-tokenised lines with ``dictionary`` into ``PREFIX.{bin,idx}``."""
    index, unk = dictionary.indices, dictionary.unk_index
    eos = [dictionary.eos_index] if append_eos else []
    stats = {"sentences": 0, "tokens": 0, "unk": 0}
    with IndexedDatasetBuilder(prefix, best_fitting_dtype(len(dictionary) + 1)) as builder:
        for line in lines:
            ids = [index.get(w, unk) for w in line.split()]
            stats["unk"] += ids.count(unk)
            ids += eos
            builder.add_item(np.asarray(ids))
            stats["sentences"] += 1
            stats["tokens"] += len(ids)
    return stats


def read_lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield line.rstrip("\n")


def progress(iterable=None, **kwargs):
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, **kwargs)
