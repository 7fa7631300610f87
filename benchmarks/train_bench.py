"""Tokens/second of a full training step (forward, backward, optimizer) for BERT-base-sized
TUPE-A, TUPE-R and BERT-A, beside HF transformers' BertForMaskedLM of the same size, same
batch, same process, fp32 and bf16 autocast.

    pip install -e '.[bench]'
    python benchmarks/train_bench.py [--steps 5] [--device cpu|cuda] [--out benchmarks/results/train_<device>.json]

15% of the positions are masked. Our LM head projects only those (as in pretraining); HF
projects every position. Both use the same optimizer (fairseq's Adam) so that only the
models differ.
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

import torch
import torch.nn.functional as F

from tupe import TupeConfig, TupeModel
from tupe.train.cpu import retain_freed_memory
from tupe.train.optim import FairseqAdam

V = 32769
SHAPES = [(8, 128), (2, 512)]
MODELS = {"TUPE-A": dict(), "TUPE-R": dict(rel_pos=True), "BERT-A": dict(pos_encoding="absolute")}


def ours(name: str, device):
    cfg = TupeConfig.from_preset("bert_base", vocab_size=V, max_positions=512, **MODELS[name])
    model = TupeModel(cfg).to(device).train()

    def step(tokens, mask, target, autocast):
        with autocast:
            logits = model(tokens, masked_tokens=mask)
        return F.cross_entropy(logits.float(), target[mask])
    return model, step


def hf_bert(device):
    from transformers import BertConfig, BertForMaskedLM

    cfg = BertConfig(vocab_size=V, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, max_position_embeddings=512, hidden_act="gelu",
                     attn_implementation="sdpa")
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
        self.autocast = contextlib.nullcontext() if dtype == "fp32" else torch.autocast(device.type, dtype=torch.bfloat16)
        self.times = []

    def step(self, record: bool = True):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        loss = self.fn(self.tokens, self.mask, self.tokens, self.autocast)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        if record:
            self.times.append(time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=5, help="timed steps per model (median reported)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        retain_freed_memory()   # as the trainer does; all models in this process profit alike
    out = args.out or Path(__file__).parent / "results" / f"train_{device.type}.json"
    machine = {"device": torch.cuda.get_device_name() if device.type == "cuda" else
               (platform.processor() or platform.machine()), "cpus": os.cpu_count(),
               "threads": torch.get_num_threads(), "torch": torch.__version__}
    results = {"machine": machine, "steps": args.steps, "rows": []}
    print(json.dumps(machine))
    for B, T in SHAPES:
        for dtype in args.dtypes.split(","):
            # all four models side by side, timed in turns (round robin), so that a slow spell of
            # the machine hits every model alike; the median step time of each is reported
            runners = {}
            for name in [*MODELS, "HF-BERT"]:
                torch.manual_seed(0)
                model, step = hf_bert(device) if name == "HF-BERT" else ours(name, device)
                runners[name] = Runner(model, step, B, T, device, dtype)
                runners[name].step(record=False)                      # warm-up
            for _ in range(args.steps):
                for r in runners.values():
                    r.step()
            for name, r in runners.items():
                sec = statistics.median(r.times)
                row = {"model": name, "batch": B, "tokens": T, "dtype": dtype,
                       "tokens_per_s": round(B * T / sec, 1), "step_s": round(sec, 4),
                       "step_s_all": [round(x, 4) for x in r.times]}
                results["rows"].append(row)
                print(json.dumps(row), flush=True)
            del runners
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
