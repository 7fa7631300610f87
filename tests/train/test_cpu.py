"""CPU helpers of the trainer."""

import resource
import sys

import pytest
import torch

from tupe.train.cpu import retain_freed_memory


def _faults(fn) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_big_tensors_reuse_pages_after_retain_freed_memory():
    n = 64 * 2 ** 20 // 4                               # 64 MB: above glibc's mmap threshold

    def allocate_and_touch():
        t = torch.empty(n)
        t.fill_(1.0)
        del t

    assert retain_freed_memory()
    pages = n * 4 // 4096
    faults = [_faults(allocate_and_touch) for _ in range(20)]
    # without it every allocation maps fresh pages: 20 x 16384 faults; with it the heap keeps
    # them after the first few (how many depends on what the heap held before)
    assert sum(faults) < 5 * pages, faults
    assert max(faults[-5:]) < pages // 10, faults
