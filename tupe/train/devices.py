"""Where and how a run computes: the process group (torchrun), the device, the autocast mode (fp32,
bf16, fp16) and the speed options (--attn-impl, --compile), with the fallbacks said in the log."""

from __future__ import annotations

import contextlib
import os
from typing import Callable

import torch
import torch.distributed as dist

from ..model import set_attn_impl
from ..model.attention import kernel_name, needs_factored
from ..model.compile import compile_layers, compile_unavailable
from .cpu import EMULATED_BF16, cpu_supports_bf16
from .restore import TrainingError


def init_distributed(args) -> tuple[int, int, torch.device]:
    """(rank, world size, device) from the launcher's environment; the process group is started
    for more than one process (NCCL on GPUs, gloo on CPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.distributed_world_size is not None and args.distributed_world_size != world:
        raise TrainingError(f"--distributed-world-size {args.distributed_world_size} but the launcher "
                            f"started {world} process(es) (WORLD_SIZE); use torchrun --nproc_per_node")
    use_cuda = torch.cuda.is_available() and not args.cpu
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", init_method="env://")
    return rank, world, device


def choose_precision(args, device: torch.device, log: Callable[[str], None]) -> str:
    """fp32, bf16 or fp16 from --fp16/--bf16/--force-bf16 and what the device does natively."""
    if args.fp16 and device.type != "cuda":
        mode = "bf16" if cpu_supports_bf16() else "fp32"
        log(f"warning: --fp16 needs CUDA; training on the CPU in {mode} instead")
        return mode
    if args.fp16:
        return "fp16"
    if args.bf16 and device.type == "cpu" and not cpu_supports_bf16() and not args.force_bf16:
        log(f"warning: --bf16 on a CPU without native bf16 (no AVX512-BF16 or AMX): {EMULATED_BF16}; "
            f"training in fp32 instead (--force-bf16 keeps bf16)")
        return "fp32"
    if args.bf16 or args.force_bf16:
        return "bf16"
    return "fp32"


def autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if precision == "fp16" else torch.bfloat16)


def apply_speed_options(model, cfg, args, device, log: Callable[[str], None]) -> None:
    """--attn-impl and --compile: how the model runs, not what it is (nothing saved changes)."""
    kernel = kernel_name(args.attn_impl)
    if kernel != "auto":
        if needs_factored(kernel) and cfg.attention_dropout > 0:
            raise TrainingError(f"--attn-impl {args.attn_impl} cannot drop attention probabilities "
                                f"(FlexAttention has no attention dropout): add --attention-dropout 0 "
                                f"(now {cfg.attention_dropout}) or use --attn-impl auto")
        set_attn_impl(model, args.attn_impl)
    if args.compile:
        if compile_layers(model, device, warn=False):
            log("--compile: encoder layers compiled (the first updates include compile time)")
        else:
            log(f"warning: --compile: {compile_unavailable(device)}; training eager")
