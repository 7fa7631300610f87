"""The .bin/.idx layout, byte for byte, against an independent writer of the documented format."""

import struct

import numpy as np
import pytest

from tupe.data.indexed_dataset import IndexedDatasetBuilder, IndexedDatasetError, MMapIndexedDataset, best_fitting_dtype

ITEMS = [[0, 17, 300, 2], [], [5], [65000, 1, 2]]


def documented_idx(sizes, dtype_code, itemsize):
    """docs/formats.md section 3, written independently with struct."""
    out = b"MMIDIDX\x00\x00" + struct.pack("<Q", 1) + struct.pack("<B", dtype_code)
    out += struct.pack("<Q", len(sizes))
    out += b"".join(struct.pack("<i", s) for s in sizes)
    offset = 0
    for s in sizes:
        out += struct.pack("<q", offset)
        offset += s * itemsize
    return out


@pytest.mark.parametrize("dtype,code", [(np.uint16, 8), (np.int32, 4), (np.int64, 5)])
def test_layout_is_byte_identical(tmp_path, dtype, code):
    with IndexedDatasetBuilder(tmp_path / "x", dtype) as b:
        for item in ITEMS:
            b.add_item(item)
    itemsize = np.dtype(dtype).itemsize
    assert (tmp_path / "x.idx").read_bytes() == documented_idx([len(i) for i in ITEMS], code, itemsize)
    want_bin = b"".join(struct.pack("<" + {2: "H", 4: "i", 8: "q"}[itemsize] * len(i), *i) for i in ITEMS)
    assert (tmp_path / "x.bin").read_bytes() == want_bin


def test_reads_a_file_written_by_the_documented_layout(tmp_path):
    sizes = [len(i) for i in ITEMS]
    (tmp_path / "y.idx").write_bytes(documented_idx(sizes, 4, 4))
    (tmp_path / "y.bin").write_bytes(b"".join(struct.pack("<%di" % len(i), *i) for i in ITEMS))
    ds = MMapIndexedDataset(tmp_path / "y")
    assert len(ds) == 4 and [ds[i].tolist() for i in range(4)] == ITEMS
    assert ds.sizes.tolist() == sizes and ds.num_tokens == 8
    assert isinstance(ds._bin, np.memmap)                      # memory-mapped, not loaded


def test_dtype_choice():
    assert best_fitting_dtype(32769) == np.uint16
    assert best_fitting_dtype(65500) == np.int32


def test_corrupt_files_are_reported(tmp_path):
    with IndexedDatasetBuilder(tmp_path / "z") as b:
        b.add_item([1, 2, 3])
    data = (tmp_path / "z.idx").read_bytes()
    (tmp_path / "z.idx").write_bytes(b"BADMAGIC!" + data[9:])
    with pytest.raises(IndexedDatasetError, match="z.idx: not a fairseq mmap index"):
        MMapIndexedDataset(tmp_path / "z")
    (tmp_path / "z.idx").write_bytes(data[:-4])
    with pytest.raises(IndexedDatasetError, match="truncated"):
        MMapIndexedDataset(tmp_path / "z")
    (tmp_path / "z.idx").write_bytes(data)
    (tmp_path / "z.bin").write_bytes(b"\x00\x00")
    with pytest.raises(IndexedDatasetError, match="z.bin: 2 bytes, index says 6"):
        MMapIndexedDataset(tmp_path / "z")
    with pytest.raises(FileNotFoundError, match="nope.idx"):
        MMapIndexedDataset(tmp_path / "nope")
