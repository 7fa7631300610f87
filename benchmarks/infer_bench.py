"""Inference speed on the CPU (eval, no grad): BERT-base-sized TUPE-A, TUPE-R and our BERT-A
against HF transformers' ``BertModel`` / ``BertForSequenceClassification`` of the same size, in
one process; and ``tupe-predict`` end to end (text in, labels out).

    pip install -e '.[bench]'      # or '.[hf]': HF transformers for the reference models
    python benchmarks/infer_bench.py [--rounds 5] [--out benchmarks/results/infer_cpu.json]

For each shape (batch x tokens: 32 x 128, 8 x 512, 1 x 128) and precision (fp32; bf16 only
where the CPU has it natively) every model's forward is timed in turns (round robin), so that a
slow spell of a shared machine hits all alike; the summary gives paired ratios (median over
rounds of ratios within a round). Two kinds of forward: ``features`` (``extract_features`` /
``BertModel``) and ``classify`` (a 2-class head on the first token / ``BertForSequenceClassification``).
Batch 1 x 128 reports the latency (seconds per call). Every row is a full-length sequence.

``tupe-predict`` is timed on a small TUPE-R classifier (``bert_small``) reading raw sentences
(cleaning, BPE, batching of one, forward, label words): rows per second.

"components" (also alone: ``--components-only``): the differences measured where they arise,
with 20 paired calls of one encoder layer each (a layer call is ~0.35 s, a whole forward ~5 s):
TUPE-R's extra cost over BERT-A (the same layer called with either model's attention mask) as a
fraction of a whole forward, and one TUPE-R layer against one HF ``BertLayer``.

``--compile`` adds "TUPE-R compile" (fp32): TUPE-R with its encoder layers torch.compiled, as
``from_pretrained(compile=True)``; the warm-up call per shape compiles and is not timed.

Targets of issue 13 (2 CPU cores): TUPE-R within 3% of our BERT-A at 512 tokens; every model at
least as fast as HF's at every shape. The eval-mode positional-bias cache is on (the default).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from train_bench import cpu_name, paired  # benchmarks/ is on sys.path when run as a script

from tupe import TupeConfig, TupeModel, save_pretrained
from tupe.checkpoint import Vocabulary
from tupe.config import SCHEMES as REGISTRY
from tupe.train.cpu import cpu_supports_bf16, retain_freed_memory

V = 32769
SCHEMES = {name: REGISTRY[name] for name in ("TUPE-A", "TUPE-R", "BERT-A")}   # from the scheme registry


COMPILED = "TUPE-R compile"     # from_pretrained(compile=True): encoder layers torch.compiled (fp32 rows)


def ours(name: str):
    scheme = SCHEMES["TUPE-R" if name == COMPILED else name]
    model = TupeModel(TupeConfig.from_preset("bert_base", vocab_size=V, max_positions=512, **scheme)).eval()
    model.register_classification_head("head", 2)
    model.eval()
    if name == COMPILED:
        from tupe.model.compile import compile_layers
        assert compile_layers(model), "torch.compile unavailable here"
    return {"features": lambda ids, mask: model.extract_features(ids),
            "classify": lambda ids, mask: model(ids, classification_head_name="head")}


def hf():
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    cfg = BertConfig(vocab_size=V, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, max_position_embeddings=512, attn_implementation="sdpa", num_labels=2)
    base = BertModel(cfg, add_pooling_layer=False).eval()
    clf = BertForSequenceClassification(cfg).eval()
    return {"features": lambda ids, mask: base(input_ids=ids, attention_mask=mask).last_hidden_state,
            "classify": lambda ids, mask: clf(input_ids=ids, attention_mask=mask).logits}


def time_shape(models: dict, B: int, T: int, kind: str, dtype: str, rounds: int) -> dict[str, list[float]]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(7, V, (B, T), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2
    mask = torch.ones_like(ids)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")
    times = {name: [] for name in models}
    with torch.inference_mode(), autocast:
        for fns in models.values():           # warm-up (and the positional-bias cache)
            fns[kind](ids, mask)
        for _ in range(rounds):
            for name, fns in models.items():
                t = time.perf_counter()
                fns[kind](ids, mask)
                times[name].append(time.perf_counter() - t)
    return times


def bias_overhead(B: int, T: int, reps: int = 20) -> dict:
    """TUPE-R's extra inference cost, measured where it arises: the same encoder layer and
    input, called with TUPE-R's attention mask (the cached (1, H, T, T) positional bias) and with
    BERT-A's (none: a full batch), in turns, ``reps`` times. Everything else in the two
    forwards is the same code, so 12 x the per-layer difference over a whole forward is TUPE-R's
    overhead, with far less noise than timing whole forwards of ~5 s each."""
    torch.manual_seed(0)
    model = TupeModel(TupeConfig.from_preset("bert_base", vocab_size=V, max_positions=512, rel_pos=True)).eval()
    enc, layer = model.encoder, model.encoder.layers[0]
    ids = torch.randint(7, V, (B, T))
    ids[:, 0] = 0
    with torch.inference_mode():
        x = enc.embed_tokens(ids)
        tupe_mask = enc.positional_bias(T).unsqueeze(0)                                # (1, H, T, T)
        bert_mask = None                         # BERT-A's full batch in inference: no mask at all
        times = {"tupe": [], "bert": []}
        for mask in (tupe_mask, bert_mask):
            layer(x, mask)                                                             # warm-up
        for _ in range(reps):
            for name, mask in (("tupe", tupe_mask), ("bert", bert_mask)):
                t = time.perf_counter()
                layer(x, mask)
                times[name].append(time.perf_counter() - t)
        t = time.perf_counter()
        model.extract_features(ids)
        forward = time.perf_counter() - t
    diffs = [a - b for a, b in zip(times["tupe"], times["bert"])]
    per_layer = statistics.median(diffs)
    return {"batch": B, "tokens": T, "reps": reps, "layer_s_tupe_r": round(statistics.median(times["tupe"]), 4),
            "layer_s_bert_a": round(statistics.median(times["bert"]), 4),
            "layer_diff_s_median": round(per_layer, 5),
            "layer_diff_s_iqr": [round(statistics.quantiles(diffs, n=4)[0], 5), round(statistics.quantiles(diffs, n=4)[2], 5)],
            "forward_s": round(forward, 3),
            "tupe_r_overhead_estimate": round(model.cfg.encoder_layers * per_layer / forward, 4)}


def layer_vs_hf(B: int, T: int, reps: int = 20) -> dict:
    """One TUPE-R encoder layer (with its cached positional bias, as in inference) against one
    HF ``BertLayer`` (SDPA, no mask: full rows) on the same input, in turns: the per-layer speed
    ratio, which whole forwards on a noisy machine cannot resolve to a few percent."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    ours = TupeModel(TupeConfig.from_preset("bert_base", vocab_size=V, max_positions=512, rel_pos=True)).eval()
    hf_cfg = BertConfig(vocab_size=V, hidden_size=768, num_hidden_layers=1, num_attention_heads=12,
                        intermediate_size=3072, max_position_embeddings=512, attn_implementation="sdpa")
    theirs = BertModel(hf_cfg, add_pooling_layer=False).eval().encoder.layer[0]
    x = torch.randn(B, T, 768)
    times = {"ours": [], "hf": []}
    with torch.inference_mode():
        mask = ours.encoder.positional_bias(T).unsqueeze(0)                            # (1, H, T, T)
        layer = ours.encoder.layers[0]
        layer(x, mask), theirs(x)                                                      # warm-up
        for _ in range(reps):
            for name, fn in (("ours", lambda: layer(x, mask)), ("hf", lambda: theirs(x))):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
    ratios = [h / o for o, h in zip(times["ours"], times["hf"])]
    q = statistics.quantiles(ratios, n=4)
    return {"batch": B, "tokens": T, "reps": reps, "layer_s_tupe_r": round(statistics.median(times["ours"]), 4),
            "layer_s_hf": round(statistics.median(times["hf"]), 4),
            "tupe_r_speedup_over_hf_median": round(statistics.median(ratios), 3),
            "tupe_r_speedup_over_hf_iqr": [round(q[0], 3), round(q[2], 3)]}


def components(machine: dict) -> dict:
    out = {"machine": machine, "bias_overhead": [], "layer_vs_hf": []}
    for B, T in ((32, 128), (8, 512)):
        for key, fn in (("bias_overhead", bias_overhead), ("layer_vs_hf", layer_vs_hf)):
            out[key].append(fn(B, T))
            print(json.dumps(out[key][-1]), flush=True)
    return out


def predict_rows_per_s(n_rows: int = 200) -> dict:
    """tupe-predict on raw text, end to end in-process, with a small TUPE-R classifier."""
    import contextlib
    import io
    import random

    from tupe.cli.predict import main as predict
    from tupe.data.bpe import learn_bpe, write_codes
    from tupe.data.dictionary import Dictionary

    words = ["river", "city", "the", "of", "and", "people", "water", "time", "world", "land", "was", "were"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        d = Dictionary()
        for w in words:
            d.add_symbol(w, 10)
        model = TupeModel(TupeConfig.from_preset("bert_small", vocab_size=len(d) + 1, max_positions=512,
                                                 rel_pos=True))
        model.register_classification_head("sentence_classification_head", 2)
        write_codes(learn_bpe({w: 10 for w in words}, 40), tmp / "bpe-code")
        save_pretrained(model, tmp / "clf", vocabulary=Vocabulary(d, tmp / "bpe-code"))
        rng = random.Random(0)
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 30))) for _ in range(n_rows)]
        (tmp / "in.txt").write_text("\n".join(lines) + "\n")
        out = io.StringIO()
        t = time.perf_counter()
        with contextlib.redirect_stdout(out):
            assert predict(["--checkpoint", str(tmp / "clf"), "--cpu", "--input", str(tmp / "in.txt")]) == 0
        seconds = time.perf_counter() - t
    assert len(out.getvalue().splitlines()) == n_rows
    return {"model": "TUPE-R bert_small", "rows": n_rows, "seconds": round(seconds, 2),
            "rows_per_s": round(n_rows / seconds, 1), "includes": "model load, cleaning, BPE, forward per row"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="timed forwards per model and shape")
    p.add_argument("--kinds", default="features,classify")
    p.add_argument("--shapes", default="32x128,8x512,1x128", help="batch x tokens, comma-separated")
    p.add_argument("--compile", action="store_true", help=f"add {COMPILED!r} (fp32; compile time in warm-up)")
    p.add_argument("--components-only", action="store_true",
                   help="measure only the per-layer components and update them in --out")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "infer_cpu.json")
    args = p.parse_args()
    retain_freed_memory()
    dtypes = ["fp32"] + (["bf16"] if cpu_supports_bf16() else [])
    machine = {"device": cpu_name(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
               "torch": torch.__version__, "precisions": dtypes,
               "bf16_note": None if "bf16" in dtypes else "no native bf16 on this CPU: fp32 only"}
    import transformers
    machine["transformers"] = transformers.__version__
    print(json.dumps(machine), flush=True)
    if args.components_only:
        results = json.loads(args.out.read_text()) if args.out.is_file() else {}
        results["components"] = components(machine)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}")
        return
    torch.manual_seed(0)
    models = {name: ours(name) for name in SCHEMES}
    models["HF BERT"] = hf()
    if args.compile:
        models[COMPILED] = ours(COMPILED)
    results = {"machine": machine, "rounds": args.rounds, "rows": [], "summary": []}
    for dtype in dtypes:
        for kind in args.kinds.split(","):
            for B, T in [tuple(map(int, x.split("x"))) for x in args.shapes.split(",")]:
                timed = {n: m for n, m in models.items() if n != COMPILED or dtype == "fp32"}
                times = time_shape(timed, B, T, kind, dtype, args.rounds)
                for name, ts in times.items():
                    sec = statistics.median(ts)
                    row = {"model": name, "kind": kind, "dtype": dtype, "batch": B, "tokens": T,
                           "tokens_per_s": round(B * T / sec, 1), "latency_s": round(sec, 4),
                           "all_s": [round(x, 4) for x in ts]}
                    results["rows"].append(row)
                    print(json.dumps(row), flush=True)
                line = {"kind": kind, "dtype": dtype, "batch": B, "tokens": T,
                        "TUPE-R_overhead_vs_BERT-A": round(paired(times["TUPE-R"], times["BERT-A"]) - 1, 4),
                        **{f"{n}_speedup_over_HF": round(paired(times["HF BERT"], times[n]), 3) for n in SCHEMES}}
                if COMPILED in times:
                    line["TUPE-R_compile_speedup_over_TUPE-R"] = round(paired(times["TUPE-R"], times[COMPILED]), 3)
                results["summary"].append(line)
                print(json.dumps(line), flush=True)
    results["components"] = components(machine)
    results["predict"] = predict_rows_per_s()
    print(json.dumps(results["predict"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
