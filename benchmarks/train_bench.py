"""Tokens/second of a full training step (forward, backward, optimizer) for BERT-base-sized
TUPE-A, TUPE-R and BERT-A, beside HF transformers' BertForMaskedLM of the same size, same
batch, same process, fp32 and bf16 autocast.

    pip install -e '.[bench]'
    python benchmarks/train_bench.py [--steps 10] [--device cpu|cuda] [--out benchmarks/results/train_<device>.json]

15% of the positions are masked. Our LM head projects only those (as in pretraining); HF
projects every position. Both use the same optimizer (fairseq's Adam) so that only the
models differ. All models of one shape and precision are timed in turns (round robin), so
that a slow spell of a shared machine hits them alike; besides the median step time of each,
the summary gives paired ratios (the median over rounds of step-time ratios taken within one
round), which are what the targets compare.

"matmul rate": the FLOP/s of the matrix products alone (one BERT-base layer's linear
layers, forward and both backward products, at the batch's token count, in the row's precision),
timed before and after every model step; per row each model's FLOP rate (model FLOPs: 3 x
forward of the linear layers, the T x T products and the LM head on the positions it projects,
per second) as a fraction of the mean matmul rate just before and after each step, the median
over steps: how close a step comes to its matrix products. ``--models TUPE-R`` times that row
alone; ``--profile`` adds the top operators of one TUPE-R step by self time. "matmul
ceiling": the bf16 / fp32 speed ratio of the same matrix products, timed back to back in
isolation. A training step cannot gain more from bf16 than its matmuls do, less the work that
does not shrink (optimizer, dropout masks, casts, norms). "TUPE-R bf16 weights" (bf16 rows
only) is a further bound: the whole model, its residual stream and its optimizer
state in bf16, no casts at all (numerically not what autocast training is; a yardstick).

"TUPE-R compile" (with --compile, CPU or CUDA): the same model with its encoder layers
torch.compiled (``train.py --compile``); compile time is excluded (warm-up steps), reported
separately. On a GPU this is the lever for the step's non-matmul time (inductor fuses the
element-wise work around the products); ``gpu_check.sh`` adds these rows.

On CUDA (``--device cuda``): bert_base at 32 x 512 and 128 x 128 by default, bf16 and fp16
autocast (fp16 without a loss scaler: the speed is the same), attention dropout 0 for every
model (FlexAttention has none; HF's SDPA then takes the flash kernel), and besides the bias
form the "flex" rows (``--attn-impl flex``: the positional terms read inside FlexAttention).
Per row: tokens/s, peak memory, and MFU: model FLOPs (3 x forward: the linear layers, the
T x T products, the LM head on the positions each model projects) per second over the GPU's
dense bf16/fp16 peak (H100/H200 SXM: 989 TFLOP/s); and "gpu_wait_at_end_s", how long the host
waited for the GPU once it had queued the whole step (backward and optimizer step included; the
forward syncs twice: its padding check, and where the masked positions are gathered): near 0,
the host (Python, kernel launches) sets the pace and fusing kernels will not help, CUDA graphs
would; large, the GPU does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from tupe import TupeConfig, TupeModel
from tupe.config import SCHEMES as REGISTRY
from tupe.train.cpu import EMULATED_BF16, cpu_bf16_flags, cpu_supports_bf16, retain_freed_memory
from tupe.train.optim import FairseqAdam

V = 32769
SHAPES = [(8, 128), (2, 512)]
CUDA_SHAPES = [(32, 512), (128, 128)]
MODELS = {name: REGISTRY[name] for name in ("TUPE-A", "TUPE-R", "BERT-A")}    # from the scheme registry
FLEX = {"TUPE-A flex": "TUPE-A", "TUPE-R flex": "TUPE-R"}      # --attn-impl flex (CUDA rows)
COMPILED = "TUPE-R compile"                                     # train.py --compile (rows with --compile)
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}     # dense bf16/fp16, SXM


ALL_BF16 = "TUPE-R bf16 weights"   # bound, not a training recipe: see the module docstring


def ours(name: str, device, attention_dropout: float = 0.1):
    all_bf16 = name == ALL_BF16
    base = "TUPE-R" if name in (ALL_BF16, COMPILED) else FLEX.get(name, name)
    cfg = TupeConfig.from_preset("bert_base", vocab_size=V, max_positions=512, attention_dropout=attention_dropout,
                                 **MODELS[base])
    model = TupeModel(cfg).to(device).train()
    if all_bf16:
        model.bfloat16()
    if name in FLEX:
        model.set_attn_impl("flex")
    if name == COMPILED:
        from tupe.model.compile import compile_layers
        assert compile_layers(model, device), "torch.compile unavailable here"

    def step(tokens, mask, target, autocast):
        with autocast:
            logits = model(tokens, masked_tokens=mask)
        return F.cross_entropy(logits.float(), target[mask])
    return model, step


def hf_bert(device, attention_dropout: float = 0.1):
    from transformers import BertConfig, BertForMaskedLM

    cfg = BertConfig(vocab_size=V, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, max_position_embeddings=512, hidden_act="gelu",
                     attention_probs_dropout_prob=attention_dropout, attn_implementation="sdpa")
    model = BertForMaskedLM(cfg).to(device).train()

    def step(tokens, mask, target, autocast):
        labels = torch.where(mask, target, torch.full_like(target, -100))
        with autocast:
            out = model(input_ids=tokens, labels=labels)
        return out.loss
    return model, step


class Runner:
    """One model with its optimizer and a fixed batch; ``step()`` times one full training step."""

    def __init__(self, model, step, B, T, device, dtype):
        g = torch.Generator().manual_seed(0)
        tokens = torch.randint(7, V, (B, T), generator=g)
        tokens[:, 0] = 0
        self.mask = (torch.rand(B, T, generator=g) < 0.15).to(device)
        self.tokens = tokens.to(device)
        self.model, self.fn, self.device = model, step, device
        self.opt = FairseqAdam(model.parameters(), lr=1e-4, weight_decay=0.01)
        low = torch.float16 if dtype == "fp16" else torch.bfloat16
        self.autocast = contextlib.nullcontext() if dtype == "fp32" else torch.autocast(device.type, dtype=low)
        self.times, self.peak_bytes, self.waits = [], 0, []

    def step(self, record: bool = True):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        loss = self.fn(self.tokens, self.mask, self.tokens, self.autocast)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        queued = time.perf_counter()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        if record:
            self.times.append(time.perf_counter() - t)
            self.waits.append(time.perf_counter() - queued)
            if self.device.type == "cuda":
                self.peak_bytes = max(self.peak_bytes, torch.cuda.max_memory_allocated())


def step_flops(B: int, T: int, projected: int, C: int = 768, F: int = 3072, L: int = 12) -> float:
    """Model FLOPs of one training step (3 x forward) of a BERT-base-shaped encoder: per token and
    layer the four linear layers (2 x (4C^2 + 2CF)) and the two T x T products (4TC); the LM head
    (dense + vocabulary projection) on the ``projected`` positions. The same formula for every
    model (TUPE's positional terms, O(T C) per step, and its folded q/k are not counted)."""
    return 3.0 * (B * T * L * (8 * C * C + 4 * C * F + 4 * T * C) + projected * (2 * C * C + 2 * C * V))


def peak_flops(device) -> Optional[float]:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((tf * 1e12 for key, tf in PEAK_TFLOPS.items() if key in name), None)


def cpu_name() -> str:
    """Model name and bf16 instruction sets, from /proc/cpuinfo where there is one."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.machine())
    return f"{model} ({', '.join(cpu_bf16_flags()) or 'no native bf16'})"


CPU_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}        # --dtypes on the CPU
DTYPES = {**CPU_DTYPES, "fp16": torch.float16}                      # and on CUDA
LINEAR_SHAPES = [(768, 2304), (768, 768), (768, 3072), (3072, 768)]    # qkv, out, fc1, fc2 (in, out)


class MatmulRunner:
    """The machine's matrix-multiply rate at the shapes a training step multiplies: one
    BERT-base layer's linear-layer products (forward and both backward products of each) at
    ``tokens`` tokens, in ``dtype``, same threads, same process. Timed in the same round robin
    as the models (``step()``), so that each model's fraction of it is a paired ratio."""

    def __init__(self, tokens: int, device, dtype: torch.dtype, reps: int = 3):
        g = torch.Generator().manual_seed(0)
        self.mats = [(torch.randn(tokens, k, generator=g).to(device, dtype), torch.randn(n, k, generator=g).to(device, dtype),
                      torch.randn(tokens, n, generator=g).to(device, dtype)) for k, n in LINEAR_SHAPES]
        self.flops = reps * sum(3 * 2 * tokens * k * n for k, n in LINEAR_SHAPES)
        self.device, self.reps, self.times = device, reps, []

    def step(self, record: bool = True):
        t = time.perf_counter()
        for _ in range(self.reps):
            for x, w, dy in self.mats:
                x @ w.t(), dy @ w, dy.t() @ x
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        if record:
            self.times.append(time.perf_counter() - t)

    def rate(self) -> float:
        return self.flops / statistics.median(self.times)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")                           # float32, bfloat16


def matmul_rates(tokens: int, device, reps: int = 5, dtypes=(torch.float32, torch.bfloat16)) -> dict:
    """FLOP/s of :class:`MatmulRunner`'s products per dtype (median of ``reps``), timed alone."""
    rates = {}
    for dtype in dtypes:
        runner = MatmulRunner(tokens, device, dtype, reps=1)
        runner.step(record=False)
        for _ in range(reps):
            runner.step()
        rates[dtype_name(dtype)] = runner.rate()
    return rates


def profile_step(runner, top: int = 15) -> list[dict]:
    """Operators of one training step by self time (torch.profiler): name, seconds, share, calls.
    On CUDA by device time (the kernels each operator launched), with the kernels' total first."""
    from torch.profiler import ProfilerActivity, profile

    cuda = runner.device.type == "cuda"
    runner.step(record=False)
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        runner.step(record=False)
    return summarise_profile(prof.key_averages(), cuda, top)


def summarise_profile(events, cuda: bool, top: int = 15) -> list[dict]:
    """Top operators of a profile (``key_averages()``) by self time, with their share.

    On CUDA, torch lists each kernel twice: as its own event (device type CUDA) and inside the
    self device time of the operator that launched it. So operators are ranked among the CPU-side
    events (their self device time: the kernels they launched), and the first line,
    "(all kernels)", sums the kernel events alone: the device's busy time, to set against the
    step time (the rest is the host: launches, Python)."""
    from torch.autograd import DeviceType

    attr = "self_device_time_total" if cuda else "self_cpu_time_total"
    ops = [e for e in events if e.device_type == DeviceType.CPU and getattr(e, attr, 0) > 0]
    kernels = [e for e in events if e.device_type != DeviceType.CPU and e.self_device_time_total > 0]
    total = sum(e.self_device_time_total for e in kernels) if cuda else sum(getattr(e, attr) for e in ops)
    ops.sort(key=lambda e: -getattr(e, attr))
    out = [{"op": e.key, "self_s": round(getattr(e, attr) / 1e6, 5), "share": round(getattr(e, attr) / total, 4),
            "calls": e.count} for e in ops[:top]]
    if cuda:
        out.insert(0, {"op": "(all kernels)", "self_s": round(total / 1e6, 5), "share": 1.0,
                       "calls": sum(e.count for e in kernels)})
    return out


def paired(a: list[float], b: list[float]) -> float:
    """Median over rounds of a[i] / b[i] (both timed in the same round)."""
    return statistics.median(x / y for x, y in zip(a, b))


def summarise(rows: list[dict]) -> list[dict]:
    by = {(r["model"], r["batch"], r["tokens"], r["dtype"]): r["step_s_all"] for r in rows}
    out = []
    for B, T in sorted({(r["batch"], r["tokens"]) for r in rows}, key=lambda s: s[1]):
        line = {"batch": B, "tokens": T}
        for dtype in ("fp32", "bf16", "fp16"):
            if ("TUPE-R", B, T, dtype) in by and ("HF-BERT", B, T, dtype) in by:
                line[f"TUPE-R_speedup_over_HF_{dtype}"] = round(paired(by["HF-BERT", B, T, dtype], by["TUPE-R", B, T, dtype]), 3)
            if ("TUPE-R", B, T, dtype) in by and ("BERT-A", B, T, dtype) in by:
                line[f"TUPE-R_overhead_vs_BERT-A_{dtype}"] = round(
                    paired(by["TUPE-R", B, T, dtype], by["BERT-A", B, T, dtype]) - 1, 3)
            for variant in (*FLEX, COMPILED):
                base = "TUPE-R" if variant == COMPILED else FLEX[variant]
                if (variant, B, T, dtype) in by and ("HF-BERT", B, T, dtype) in by and (base, B, T, dtype) in by:
                    key = variant.replace(" ", "_")
                    line[f"{key}_speedup_over_HF_{dtype}"] = round(
                        paired(by["HF-BERT", B, T, dtype], by[variant, B, T, dtype]), 3)
                    line[f"{key}_speedup_over_{base}_{dtype}"] = round(paired(by[base, B, T, dtype], by[variant, B, T, dtype]), 3)
        if ("TUPE-R", B, T, "bf16") in by and ("TUPE-R", B, T, "fp32") in by:
            for name in [n for n in (*MODELS, "HF-BERT") if (n, B, T, "bf16") in by and (n, B, T, "fp32") in by]:
                line[f"{name}_bf16_speedup"] = round(statistics.median(by[name, B, T, "fp32"]) /
                                                     statistics.median(by[name, B, T, "bf16"]), 3)
            if (ALL_BF16, B, T, "bf16") in by:
                line["TUPE-R_bf16_weights_speedup"] = round(statistics.median(by["TUPE-R", B, T, "fp32"]) /
                                                            statistics.median(by[ALL_BF16, B, T, "bf16"]), 3)
        out.append(line)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=10, help="timed steps per model (median reported)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtypes", default=None, help="default: fp32,bf16 (CPU), bf16,fp16 (CUDA)")
    p.add_argument("--shapes", default=None, help="BxT,...; default: 8x128,2x512 (CPU), 32x512,128x128 (CUDA)")
    p.add_argument("--compile", action="store_true", help=f"add the {COMPILED!r} rows")
    p.add_argument("--flex", action=argparse.BooleanOptionalAction, default=None,
                   help="add the --attn-impl flex rows (default: on CUDA only; on the CPU they run the "
                        "grid evaluation, a check of the path rather than a speed)")
    p.add_argument("--profile", action="store_true", help="add a per-operator profile of one TUPE-R step (CUDA: "
                   "and of TUPE-R flex, by device time) "
                   "per shape and precision (top operators by self time)")
    p.add_argument("--models", default=None, help="comma-separated subset of the rows to time (default: all; "
                   "e.g. TUPE-R for the fraction of the matmul rate alone)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.dtypes = args.dtypes or ("bf16,fp16" if cuda else "fp32,bf16")
    shapes = [tuple(map(int, s.split("x"))) for s in args.shapes.split(",")] if args.shapes else \
        (CUDA_SHAPES if cuda else SHAPES)
    flex = cuda if args.flex is None else args.flex
    attention_dropout = 0.0 if cuda or flex else 0.1
    if device.type == "cpu":
        retain_freed_memory()   # as the trainer does; all models in this process profit alike
    out = args.out or Path(__file__).parent / "results" / f"train_{device.type}.json"
    machine = {"device": torch.cuda.get_device_name() if device.type == "cuda" else cpu_name(),
               "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__}
    results = {"machine": machine, "steps": args.steps, "attention_dropout": attention_dropout, "rows": []}
    print(json.dumps(machine))
    dtypes = args.dtypes.split(",")
    if not cuda and set(dtypes) - set(CPU_DTYPES):
        raise SystemExit(f"--dtypes on the CPU: choose from {sorted(CPU_DTYPES)}, got {args.dtypes}")
    if device.type == "cpu" and "bf16" in dtypes and not cpu_supports_bf16():
        # never report a bf16 ratio where bf16 is emulated: it measures the emulation
        dtypes.remove("bf16")
        results["bf16_skipped"] = f"this CPU has no native bf16: {EMULATED_BF16}"
        print(json.dumps({"bf16_skipped": results["bf16_skipped"]}))
    args.dtypes = ",".join(dtypes)
    peak = peak_flops(device)
    for B, T in shapes:
        for dtype in args.dtypes.split(","):
            # all models side by side, timed in turns (round robin), so that a slow spell of
            # the machine hits every model alike; the median step time of each is reported
            names = [*MODELS, "HF-BERT"]
            names += [*FLEX] if flex else []
            names += [ALL_BF16] if dtype == "bf16" and not cuda else []
            names += [COMPILED] if args.compile else []
            if args.models:
                wanted = args.models.split(",")
                unknown = set(wanted) - set(names)
                if unknown:
                    raise SystemExit(f"--models: no row {sorted(unknown)} here; rows: {names}")
                names = [n for n in names if n in wanted]
            runners, warmup_s = {}, {}
            for name in names:
                torch.manual_seed(0)
                model, step = hf_bert(device, attention_dropout) if name == "HF-BERT" else \
                    ours(name, device, attention_dropout)
                runners[name] = Runner(model, step, B, T, device, dtype)
                t = time.perf_counter()
                for _ in range(2 if name in FLEX or name == COMPILED else 1):
                    runners[name].step(record=False)                  # warm-up (and compile)
                warmup_s[name] = time.perf_counter() - t
            # the matmul rate, timed between the model steps: each model step is paired with the
            # mean of the matmul times just before and just after it (a slow spell of this shared
            # machine lasts seconds to minutes, so the adjacent timings share it)
            bracket = {name: [] for name in runners}
            matmul = MatmulRunner(B * T, device, DTYPES[dtype])
            matmul.step(record=False)
            for _ in range(args.steps):
                matmul.step()
                for name, r in runners.items():
                    r.step()
                    matmul.step()
                    bracket[name].append((matmul.times[-2] + matmul.times[-1]) / 2)
            for name, r in runners.items():
                sec = statistics.median(r.times)
                row = {"model": name, "batch": B, "tokens": T, "dtype": dtype,
                       "tokens_per_s": round(B * T / sec, 1), "step_s": round(sec, 4),
                       "step_s_all": [round(x, 4) for x in r.times]}
                if name in FLEX or name == COMPILED:
                    row["warmup_s"] = round(warmup_s[name], 1)
                projected = B * T if name == "HF-BERT" else int(r.mask.sum())
                flops = step_flops(B, T, projected)
                row["model_gflops_per_s"] = round(flops / sec / 1e9, 1)
                # what the fraction is computed from: FLOPs of a step and of a matmul timing, and the
                # matmul seconds around each step (mean of the timings before and after it)
                row["step_gflop"] = round(flops / 1e9, 2)
                row["matmul_gflop"] = round(matmul.flops / 1e9, 2)
                row["matmul_s_around_steps"] = [round(x, 4) for x in bracket[name]]
                # median over steps of (model FLOP/s) / (matmul FLOP/s around that step)
                row["fraction_of_matmul_rate"] = round(statistics.median(
                    flops * m / (matmul.flops * t) for t, m in zip(r.times, bracket[name])), 3)
                if cuda:
                    row["peak_memory_gb"] = round(r.peak_bytes / 2 ** 30, 2)
                    row["gpu_wait_at_end_s"] = round(statistics.median(r.waits), 4)
                    row["tflops"] = round(flops / sec / 1e12, 1)
                    if peak:
                        row["mfu"] = round(flops / sec / peak, 3)
                results["rows"].append(row)
                print(json.dumps(row), flush=True)
            results.setdefault("matmul_gflops_per_s", {}).setdefault(f"{B}x{T}", {})[
                dtype_name(DTYPES[dtype])] = round(matmul.rate() / 1e9, 1)
            for name in [n for n in ("TUPE-R", "TUPE-R flex", COMPILED) if args.profile and n in runners]:
                ops = profile_step(runners[name])
                results.setdefault(f"profile_{name.replace(' ', '_')}", {})[f"{B}x{T}_{dtype}"] = ops
                print(json.dumps({"profile": f"{name} {B}x{T}_{dtype}", "top": ops[:8]}), flush=True)
            del runners
            write_results(out, results, final=False)      # what is measured so far survives a kill
        if not cuda and {"fp32", "bf16"} <= set(args.dtypes.split(",")):
            rates = matmul_rates(B * T, device)     # both precisions back to back: their ratio
            results.setdefault("matmul_ceiling_bf16_speedup", {})[f"{B}x{T}"] = round(
                rates["bfloat16"] / rates["float32"], 3)
        print(json.dumps({"matmul_gflops_per_s": results["matmul_gflops_per_s"][f"{B}x{T}"], "tokens": B * T}), flush=True)
    for line in write_results(out, results, final=True):
        print(json.dumps(line))
    print(f"wrote {out}")


def write_results(out: Path, results: dict, final: bool) -> list[dict]:
    """The results file with the summary of the rows so far; ``"complete": false`` until the
    last row (a run cut short, e.g. by a time limit on a lent GPU, keeps what it measured)."""
    results["summary"] = summarise(results["rows"])
    results["complete"] = final
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return results["summary"]


if __name__ == "__main__":
    main()
