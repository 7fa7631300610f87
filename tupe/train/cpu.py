"""What training on a CPU needs to know about the CPU and its memory allocator."""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3     # glibc mallopt parameters (malloc.h)


def cpu_bf16_flags() -> list[str]:
    """The CPU's native bf16 instruction sets among AVX512-BF16 and AMX-BF16 (from /proc/cpuinfo;
    empty where there is no such file: not Linux, so be conservative)."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return []
    return sorted(set(re.findall(r"\b(avx512_bf16|amx_bf16)\b", info)))


#: What bf16 costs where it is emulated (measured on a 2-core AVX2-only AMD EPYC, BERT-base linear layer).
EMULATED_BF16 = ("bf16 matrix products are emulated there, measured at 1-16 GFLOP/s against 97-122 GFLOP/s "
                 "in fp32 for a BERT-base linear layer (a training step tens of times slower)")


def cpu_supports_bf16() -> bool:
    """Native bf16 arithmetic (AVX512-BF16 or AMX), where bf16 autocast pays off."""
    return bool(cpu_bf16_flags())


def retain_freed_memory() -> bool:
    """Keep freed heap memory in the process (glibc only; a no-op elsewhere).

    glibc serves every allocation above 32 MB with a fresh ``mmap`` and returns it to the
    kernel on free, so a CPU training step, which allocates and frees the same large tensors
    (activations, gradients, bf16 weight casts) every time, page-faults its way through
    ~300 MB of new zeroed pages per step at BERT-base size (70-90 thousand faults; 5-8% of
    the step). Serving them from the heap and not trimming it makes the next step reuse the
    pages, as jemalloc/tcmalloc (which PyTorch's CPU tuning guide recommends preloading) do.
    The price is that the process keeps its peak memory until it exits. Returns whether the
    settings were applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # musl and other libcs without mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, 2 ** 30) and mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
