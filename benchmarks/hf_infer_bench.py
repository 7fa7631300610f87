"""Inference tokens/second (eval, no grad, fp32) of BERT-base-sized TUPE-R through the
transformers wrapper (``tupe.hf.TupeHfModel``) against the native model it wraps, beside our
BERT-A and HF transformers' ``BertModel`` of the same size: same batch, same process.

    pip install -e '.[hf]'
    python benchmarks/hf_infer_bench.py [--rounds 7] [--out benchmarks/results/hf_infer_cpu.json]

Every row of the batch is a full-length sequence (no padding), given with an all-ones
``attention_mask`` to the transformers classes. The models of one shape are timed in turns
(round robin) so that a slow spell of a shared machine hits them alike; the summary gives the
paired ratios (median over rounds of time ratios taken within one round): the wrapper's cost
over the native model (target: at most 2%), and each model's speed relative to HF BertModel.

Two readings of the wrapper's cost: ``wrapper_overhead_vs_native`` compares whole forwards of
the two (separate calls, so it carries the machine's call-to-call noise, several % on a shared
2-core VM), and ``wrapper_own_time`` times, inside each wrapper call, the native encoder's part
and reports the rest (mask check, output object) as a fraction of it: the exact cost of the
wrapping, free of that noise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from train_bench import cpu_name, paired  # benchmarks/ is on sys.path when run as a script

from tupe import TupeConfig, TupeModel
from tupe.config import SCHEMES as REGISTRY
from tupe.train.cpu import retain_freed_memory

V = 32769
SHAPES = [(32, 128), (8, 512)]


def native(name: str):
    scheme = REGISTRY[name]
    model = TupeModel(TupeConfig.from_preset("bert_base", vocab_size=V, max_positions=512, **scheme)).eval()
    return model, lambda ids, mask: model.extract_features(ids)


def wrapped(reference: TupeModel, inner_times: list):
    """The transformers base model holding a copy of ``reference``'s encoder weights; the
    native encoder's share of each call is appended to ``inner_times``."""
    import tupe.hf
    from tupe.checkpoint import hf_state_dict

    model = tupe.hf.TupeHfModel(tupe.hf.TupeHfConfig.from_tupe_config(reference.cfg)).eval()
    state = {k[len("tupe."):]: v for k, v in hf_state_dict(reference).items() if k.startswith("tupe.")}
    model.load_state_dict(state)
    encode = model.encoder.encode

    def timed_encode(*args, **kwargs):
        t = time.perf_counter()
        out = encode(*args, **kwargs)
        inner_times.append(time.perf_counter() - t)
        return out
    model.encoder.encode = timed_encode
    return model, lambda ids, mask: model(input_ids=ids, attention_mask=mask).last_hidden_state


def hf_bert():
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=V, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, max_position_embeddings=512, attn_implementation="sdpa")
    model = BertModel(cfg, add_pooling_layer=False).eval()
    return model, lambda ids, mask: model(input_ids=ids, attention_mask=mask).last_hidden_state


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=7, help="timed forwards per model (median reported)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "hf_infer_cpu.json")
    args = p.parse_args()
    retain_freed_memory()
    machine = {"device": cpu_name(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
               "torch": torch.__version__}
    import transformers
    machine["transformers"] = transformers.__version__
    print(json.dumps(machine), flush=True)
    torch.manual_seed(0)
    tupe_r, run_r = native("TUPE-R")
    inner: list[float] = []
    models = {"TUPE-R native": run_r, "TUPE-R tupe.hf": wrapped(tupe_r, inner)[1], "BERT-A native": native("BERT-A")[1],
              "HF BertModel": hf_bert()[1]}
    results = {"machine": machine, "rounds": args.rounds, "rows": [], "summary": []}
    for B, T in SHAPES:
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(7, V, (B, T), generator=g)
        ids[:, 0], ids[:, -1] = 0, 2
        mask = torch.ones_like(ids)
        times = {name: [] for name in models}
        with torch.inference_mode():
            for fn in models.values():      # warm-up
                fn(ids, mask)
            inner.clear()
            for _ in range(args.rounds):
                for name, fn in models.items():
                    t = time.perf_counter()
                    fn(ids, mask)
                    times[name].append(time.perf_counter() - t)
        for name, ts in times.items():
            sec = statistics.median(ts)
            row = {"model": name, "batch": B, "tokens": T, "tokens_per_s": round(B * T / sec, 1),
                   "forward_s": round(sec, 4), "forward_s_all": [round(x, 4) for x in ts]}
            results["rows"].append(row)
            print(json.dumps(row), flush=True)
        line = {"batch": B, "tokens": T,
                "wrapper_overhead_vs_native": round(paired(times["TUPE-R tupe.hf"], times["TUPE-R native"]) - 1, 4),
                "wrapper_own_time": round(statistics.median((w - i) / i for w, i in zip(times["TUPE-R tupe.hf"], inner)), 6),
                **{f"{name}_speedup_over_HF": round(paired(times["HF BertModel"], times[name]), 3)
                   for name in models if name != "HF BertModel"}}
        results["summary"].append(line)
        print(json.dumps(line), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
