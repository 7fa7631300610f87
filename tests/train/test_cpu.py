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


@pytest.mark.parametrize("native, force, want", [(True, False, "bf16"), (False, False, "fp32"), (False, True, "bf16")])
def test_bf16_on_a_cpu_without_native_bf16_falls_back_with_one_warning(monkeypatch, native, force, want):
    from types import SimpleNamespace

    import tupe.train.devices as devices

    monkeypatch.setattr(devices, "cpu_supports_bf16", lambda: native)
    said = []
    args = SimpleNamespace(fp16=False, bf16=True, force_bf16=force)
    assert devices.choose_precision(args, torch.device("cpu"), said.append) == want
    warnings = [s for s in said if "without native bf16" in s]
    assert len(warnings) == (1 if (not native and not force) else 0)
    if warnings:
        assert "GFLOP/s" in warnings[0] and "--force-bf16" in warnings[0]
