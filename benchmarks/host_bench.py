"""Host time of a training step: the Python and dispatcher work that does not shrink with a
faster device.

A BERT-base-deep model (12 layers, 12 heads) at tiny widths (hidden 48, FFN 48, vocabulary 64)
on one CPU thread, batch 1 x 8, so that the arithmetic is negligible and what is timed is the
cost of issuing the operations: forward (with the loss), backward, optimizer step (fairseq's
Adam), median over steps, and the number of aten operations one step issues (torch.profiler).
TUPE-A, TUPE-R and BERT-A beside HF transformers' BertForMaskedLM of the same depth and widths
(with ``pip install -e '.[bench]'``), timed in turns, bias form, attention dropout 0 as on a GPU; hidden dropout
0.1 (on the CPU this project's dropout draws its own mask, see tupe/model/dropout.py: the
"dropout 0" rows show the step without it).

Why: a GPU runs a BERT-base step at 16k tokens in about 40 ms (docs/performance.md); if issuing
its kernels takes the host as long, the GPU waits and fusing kernels gains nothing (CUDA graphs
would). With ``--device cuda`` the same tiny model runs on the GPU, synchronised at the end of
each step: its step time is then what issuing a step's kernels costs there (launches included),
the floor under the real step (``gpu_check.sh`` runs it).

    python benchmarks/host_bench.py [--steps 30] [--device cpu|cuda] [--out benchmarks/results/host_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_bench import cpu_name  # noqa: E402  (the benchmarks' shared machine description)

from tupe import TupeConfig, TupeModel  # noqa: E402
from tupe.config import SCHEMES as REGISTRY  # noqa: E402
from tupe.train.optim import FairseqAdam  # noqa: E402

V, B, T = 64, 1, 8
WIDTHS = dict(encoder_embed_dim=48, encoder_ffn_embed_dim=48, encoder_attention_heads=12)


def ours(name: str, dropout: float, device):
    cfg = TupeConfig.from_preset("bert_base", vocab_size=V, max_positions=512, attention_dropout=0.0,
                                 dropout=dropout, **WIDTHS, **REGISTRY[name])
    model = TupeModel(cfg).to(device).train()

    def loss_fn(tokens, mask):
        return F.cross_entropy(model(tokens, masked_tokens=mask).float(), tokens[mask])
    return model, loss_fn


def hf_bert(dropout: float, device):
    from transformers import BertConfig, BertForMaskedLM

    cfg = BertConfig(vocab_size=V, hidden_size=48, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=48, max_position_embeddings=512, hidden_dropout_prob=dropout,
                     attention_probs_dropout_prob=0.0, attn_implementation="sdpa")
    model = BertForMaskedLM(cfg).to(device).train()

    def loss_fn(tokens, mask):
        return model(input_ids=tokens, labels=torch.where(mask, tokens, torch.full_like(tokens, -100))).loss
    return model, loss_fn


class Runner:
    """One model, its optimizer and a fixed batch; ``step()`` times the three phases."""

    def __init__(self, model, loss_fn, device):
        g = torch.Generator().manual_seed(0)
        tokens = torch.randint(7, V, (B, T), generator=g)
        tokens[:, 0] = 0
        mask = torch.zeros(B, T, dtype=torch.bool)
        mask[:, 3] = True
        self.tokens, self.mask, self.cuda = tokens.to(device), mask.to(device), device.type == "cuda"
        self.loss_fn, self.opt = loss_fn, FairseqAdam(model.parameters(), lr=1e-4, weight_decay=0.01)
        self.phases = {"forward_ms": [], "backward_ms": [], "optimizer_ms": [], "step_ms": []}

    def step(self, record: bool = True):
        t0 = time.perf_counter()
        loss = self.loss_fn(self.tokens, self.mask)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.cuda:
            torch.cuda.synchronize()
        t3 = time.perf_counter()
        if record:
            for key, dt in zip(self.phases, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                self.phases[key].append(dt * 1e3)

    def row(self) -> dict:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            self.step(record=False)
        row = {key: round(statistics.median(v), 2) for key, v in self.phases.items()}
        row["aten_ops"] = sum(1 for e in prof.events() if e.name.startswith("aten::"))
        return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30, help="timed steps per model (median reported)")
    p.add_argument("--device", default="cpu", help="cpu (one thread) or cuda (the tiny model on the GPU)")
    p.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/host_<device>.json")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    out = args.out or Path(__file__).parent / "results" / f"host_{device.type}.json"
    torch.set_num_threads(1)
    machine = {"device": cpu_name(), "cpus": os.cpu_count(), "threads": 1, "torch": torch.__version__}
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(machine))
    results = {"machine": machine, "batch": B, "tokens": T, "layers": 12, "widths": WIDTHS, "rows": []}
    for dropout in (0.1, 0.0):
        runners = {}
        for name in ("TUPE-A", "TUPE-R", "BERT-A", "HF-BERT"):
            torch.manual_seed(0)
            if name == "HF-BERT":
                try:
                    runners[name] = Runner(*hf_bert(dropout, device), device)
                except ImportError:
                    print("HF-BERT: transformers not installed (pip install -e '.[bench]'); row skipped")
            else:
                runners[name] = Runner(*ours(name, dropout, device), device)
        for _ in range(5):
            for r in runners.values():
                r.step(record=False)
        for _ in range(args.steps):                  # in turns: a slow spell hits every model alike
            for r in runners.values():
                r.step()
        for name, r in runners.items():
            row = {"model": name, "dropout": dropout, **r.row()}
            results["rows"].append(row)
            print(json.dumps(row), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
