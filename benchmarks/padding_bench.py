"""What reading positions from the padding mask costs (left-padding support, padding.py).

    python benchmarks/padding_bench.py [--rounds 15] [--out benchmarks/results/padding_cpu.json]

A bert_base-sized TUPE-R, fp32, on the CPU; one forward in inference (no grad) and one
training step (forward + backward) on 8 x 128 tokens, three ways, timed in turns (round robin)
so that a slow spell of a shared machine hits all alike:

* ``right-padded``: the default layout (rows of different lengths, padding on the right): the
  per-forward check finds no leading padding and rotates nothing;
* ``no check``: the same batch with the check replaced by "no left padding" (what the encoder
  did before left padding was supported): the baseline;
* ``left-padded``: the same rows padded on the left: rotated in, and the outputs rotated back.

Reported: the median seconds per call and the paired ratios to ``no check`` (median over rounds
of the ratio within a round), and the check alone (``padding_layout`` on the batch's padding mask,
timed over 2000 calls): whole-forward ratios of a shared 2-core machine move by a few percent
between rounds, the check's own time is the precise figure. CPU model and bf16 flags are
recorded with the results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_bench import cpu_name  # noqa: E402

import tupe.model.transformer as transformer  # noqa: E402
from tupe import TupeConfig, TupeModel  # noqa: E402


def batches(B: int, T: int, vocab: int):
    g = torch.Generator().manual_seed(0)
    lengths = torch.linspace(T // 2, T, B).long()
    right = torch.full((B, T), 1, dtype=torch.long)
    left = torch.full((B, T), 1, dtype=torch.long)
    for b, n in enumerate(lengths.tolist()):
        row = torch.randint(4, vocab, (n,), generator=g)
        row[0] = 0
        right[b, :n], left[b, T - n:] = row, row
    return right, left


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--arch", default="bert_base")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "padding_cpu.json")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    cfg = TupeConfig.from_scheme("TUPE-R", vocab_size=32769, arch=args.arch)
    model = TupeModel(cfg)
    right, left = batches(args.batch, args.tokens, cfg.vocab_size)
    real_layout = transformer.padding_layout

    def call(kind: str, train: bool) -> float:
        tokens = left if kind == "left-padded" else right
        # "no check": no left padding, whether anything is padded unknown (the rows are: the key mask is built)
        transformer.padding_layout = (lambda padding: (None, None)) if kind == "no check" else real_layout
        model.train(train)
        start = time.perf_counter()
        if train:
            model(tokens, masked_tokens=tokens.ne(1)).float().logsumexp(-1).mean().backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                model(tokens)
        seconds = time.perf_counter() - start
        transformer.padding_layout = real_layout
        return seconds

    kinds = ("no check", "right-padded", "left-padded")
    results = {}
    for mode, train in (("inference", False), ("training step", True)):
        for kind in kinds:
            call(kind, train)                                                       # warm-up
        times = {kind: [] for kind in kinds}
        for _ in range(args.rounds):
            for kind in kinds:
                times[kind].append(call(kind, train))
        results[mode] = {kind: {"median_s": statistics.median(t),
                                "ratio_to_no_check": statistics.median(a / b for a, b in zip(t, times["no check"]))}
                         for kind, t in times.items()}
        print(f"{mode} ({args.batch} x {args.tokens}, {args.arch} TUPE-R, fp32):")
        for kind, row in results[mode].items():
            print(f"  {kind:<13} {row['median_s']:.4f} s   x{row['ratio_to_no_check']:.3f}")
    padding = right.eq(1)
    start = time.perf_counter()
    for _ in range(2000):
        real_layout(padding)
    check_s = (time.perf_counter() - start) / 2000
    results["check alone"] = {"seconds_per_call": check_s,
                              "fraction_of_inference_forward": check_s / results["inference"]["no check"]["median_s"]}
    print(f"the check alone: {check_s * 1e6:.1f} us per forward "
          f"({100 * results['check alone']['fraction_of_inference_forward']:.4f}% of an inference forward)")
    out = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__, "arch": args.arch,
           "batch": args.batch, "tokens": args.tokens, "rounds": args.rounds, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
