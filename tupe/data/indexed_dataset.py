"""fairseq's memory-mapped binarized dataset: ``NAME.bin`` + ``NAME.idx``.

``.idx`` layout (little-endian): 9 bytes magic ``MMIDIDX\\x00\\x00``, u64 version 1, u8 dtype
code, u64 count N, N int32 sizes, N int64 byte offsets into ``.bin``. ``.bin`` is the
concatenation of every item's token ids in that dtype.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Iterable, Union

import numpy as np
import torch

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64,
          7: np.float64, 8: np.uint16}
CODES = {np.dtype(np.uint8): 1, np.dtype(np.int8): 2, np.dtype(np.int16): 3, np.dtype(np.int32): 4,
         np.dtype(np.int64): 5, np.dtype(np.float64): 6, np.dtype(np.uint16): 8}
PathLike = Union[str, os.PathLike]


class IndexedDatasetError(ValueError):
    """A malformed ``.idx``/``.bin`` pair."""


def best_fitting_dtype(vocab_size: int):
    return np.uint16 if vocab_size < 65500 else np.int32


def exists(prefix: PathLike) -> bool:
    return Path(f"{prefix}.idx").is_file() and Path(f"{prefix}.bin").is_file()


class IndexedDatasetBuilder:
    """Streams items to ``PREFIX.bin``; ``finalize()`` writes ``PREFIX.idx``."""

    def __init__(self, prefix: PathLike, dtype=np.uint16):
        self.prefix = str(prefix)
        self.dtype = np.dtype(dtype)
        self._bin = open(self.prefix + ".bin", "wb")
        self._pending: list[int] = []            # sizes not yet packed into an array
        self._size_chunks: list[np.ndarray] = []

    def add_item(self, ids: Union[np.ndarray, torch.Tensor, Iterable[int]]) -> None:
        if isinstance(ids, torch.Tensor):
            ids = ids.numpy()
        arr = np.asarray(ids, dtype=self.dtype)
        self._bin.write(arr.tobytes(order="C"))
        self._pending.append(int(arr.size))
        if len(self._pending) >= 1 << 20:
            self._flush_sizes()

    def add_items(self, flat: np.ndarray, sizes: np.ndarray) -> None:
        """Many items at once: their concatenation and their lengths."""
        if int(np.sum(sizes)) != len(flat):
            raise ValueError(f"sizes sum to {int(np.sum(sizes))} but {len(flat)} ids were given")
        self._bin.write(np.ascontiguousarray(flat, dtype=self.dtype).tobytes())
        self._flush_sizes()
        self._size_chunks.append(np.asarray(sizes, dtype=np.int32))

    def _flush_sizes(self) -> None:
        if self._pending:
            self._size_chunks.append(np.asarray(self._pending, dtype=np.int32))
            self._pending = []

    def finalize(self) -> None:
        self._bin.close()
        self._flush_sizes()
        sizes = np.concatenate(self._size_chunks) if self._size_chunks else np.zeros(0, np.int32)
        pointers = np.zeros(len(sizes), dtype=np.int64)
        if len(sizes) > 1:
            np.cumsum(sizes[:-1].astype(np.int64) * self.dtype.itemsize, out=pointers[1:])
        with open(self.prefix + ".idx", "wb") as f:
            f.write(MAGIC)
            f.write(struct.pack("<Q", VERSION))
            f.write(struct.pack("<B", CODES[self.dtype]))
            f.write(struct.pack("<Q", len(sizes)))
            f.write(sizes.tobytes(order="C"))
            f.write(pointers.tobytes(order="C"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.finalize()
        else:
            self._bin.close()


class MMapIndexedDataset(torch.utils.data.Dataset):
    """Reads ``PREFIX.{idx,bin}`` through ``np.memmap``: nothing is loaded into RAM."""

    def __init__(self, prefix: PathLike):
        self.prefix = str(prefix)
        idx_path, bin_path = self.prefix + ".idx", self.prefix + ".bin"
        for p in (idx_path, bin_path):
            if not os.path.isfile(p):
                raise FileNotFoundError(f"binarized dataset file not found: {p}")
        with open(idx_path, "rb") as f:
            header = f.read(9 + 8 + 1 + 8)
        if len(header) < 26 or header[:9] != MAGIC:
            raise IndexedDatasetError(f"{idx_path}: not a fairseq mmap index (bad magic)")
        (version,) = struct.unpack("<Q", header[9:17])
        if version != VERSION:
            raise IndexedDatasetError(f"{idx_path}: unsupported index version {version}")
        (code,) = struct.unpack("<B", header[17:18])
        if code not in DTYPES:
            raise IndexedDatasetError(f"{idx_path}: unknown dtype code {code}")
        (n,) = struct.unpack("<Q", header[18:26])
        self.dtype = np.dtype(DTYPES[code])
        expected = 26 + n * (4 + 8)
        if os.path.getsize(idx_path) < expected:
            raise IndexedDatasetError(f"{idx_path}: truncated ({os.path.getsize(idx_path)} bytes, "
                                      f"{expected} needed for {n} items)")
        self._index = np.memmap(idx_path, mode="r", dtype=np.uint8)
        self.sizes = np.frombuffer(self._index, dtype=np.int32, count=n, offset=26)
        self.pointers = np.frombuffer(self._index, dtype=np.int64, count=n, offset=26 + 4 * n)
        total = int(self.sizes.astype(np.int64).sum()) * self.dtype.itemsize
        if os.path.getsize(bin_path) != total:
            raise IndexedDatasetError(f"{bin_path}: {os.path.getsize(bin_path)} bytes, index says {total}")
        self._bin = np.memmap(bin_path, mode="r", dtype=self.dtype) if total else np.zeros(0, self.dtype)

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, i: int) -> torch.Tensor:
        start = int(self.pointers[i]) // self.dtype.itemsize
        arr = np.array(self._bin[start: start + int(self.sizes[i])], dtype=np.int64)
        return torch.from_numpy(arr)

    @property
    def num_tokens(self) -> int:
        return int(self.sizes.astype(np.int64).sum())
