"""One layer's TUPE-R attention on CUDA, forward + backward, bert_base heads (12 x 64) at
32 x 512 in bf16 (some rows padded), timed alone with CUDA events: where ``--attn-impl flex``
spends its time.

Rows:

* ``bias form (SDPA)``: the default path: the (H, T, T) positional bias (untied term, relative
  table, [CLS]'s row and column) plus padding as one learnable (B, H, T, T) mask to SDPA.
* ``flex``: this version's path (``FlexPositions.attend``): the per-distance table spread to
  (H, T, T) outside the kernel, with [CLS]'s column value in column 0, read as
  ``relative[h, q, kv]`` with its gradient (atomic adds over H T^2 addresses, B-fold contention).
* ``flex, [CLS] scalars with gradient in the kernel``: the earlier path: theta_1 (row) and
  theta_2 (column) read in the score modification with their gradients, which FlexAttention's
  backward accumulates with an atomic add per score element onto H addresses.
* ``flex, nothing captured with a gradient``: the same kernel with every captured tensor
  detached: the floor (not a training path: the table and [CLS]'s scalars would get no gradient).
* ``flex, relative term gathered from the (H, 2T-1) table``: the table read as
  ``table[h, kv - q + T - 1]`` with its gradient (atomic adds onto 2T-1 addresses per head),
  [CLS]'s column detached (in this row it gets no gradient: the gather's cost alone).

    python benchmarks/flex_bench.py [--batch 32] [--tokens 512] [--out benchmarks/results/flex_cuda.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from tupe.model.flex import FlexPositions, flex_attention_kernel
from tupe.model.positional import toeplitz


def tensors(B: int, T: int, H: int, d: int, device):
    g = torch.Generator().manual_seed(0)

    def leaf(*shape, std=1.0, dtype=torch.float32):
        return (torch.randn(*shape, generator=g) * std).to(device, dtype).requires_grad_()
    q, k, v = (leaf(B, H, T, d, dtype=torch.bfloat16) for _ in range(3))
    row = torch.ones(1, T, 1, device=device)
    row[:, 0] = 0                                            # [CLS]'s u, w rows are zero when untied
    pos_q, pos_k = leaf(H, T, d, std=0.1), leaf(H, T, d, std=0.3)
    padding = torch.zeros(B, T, dtype=torch.bool, device=device)
    padding[B // 2:, T - T // 8:] = True                     # half the rows end in padding
    return dict(q=q, k=k, v=v, pos_q=pos_q, pos_k=pos_k, row=row, per_distance=leaf(H, 2 * T - 1, std=0.5),
                row0=leaf(H, std=0.5), col0=leaf(H, std=0.5), padding=padding)


def variants(t: dict, scale: float):
    T = t["padding"].size(1)

    def positions(**extra) -> FlexPositions:
        return FlexPositions(t["padding"], pos_q=t["pos_q"] * t["row"] * scale, pos_k=t["pos_k"] * t["row"], **extra)

    def with_score_mod(make_score_mod, **extra):
        def run():
            pos = positions(**extra)
            qf, kf, s = pos.fold(t["q"], t["k"], scale)
            return flex_attention_kernel()(qf, kf, t["v"], score_mod=make_score_mod(), block_mask=block_mask, scale=s)
        return run

    block_mask = positions().block_mask()

    def bias_form():
        pos = torch.bmm(t["pos_q"] * t["row"], (t["pos_k"] * t["row"]).transpose(1, 2)) * scale      # (H, T, T)
        bias = pos + toeplitz(t["per_distance"], T)
        bias = bias.clone()
        bias[:, :, 0] = t["col0"].unsqueeze(-1)
        bias[:, 0, :] = t["row0"].unsqueeze(-1)
        mask = bias.unsqueeze(0).masked_fill(t["padding"].view(-1, 1, 1, T), float("-inf"))        # (B, H, T, T)
        return F.scaled_dot_product_attention(t["q"], t["k"], t["v"], attn_mask=mask.to(t["q"].dtype), scale=scale)

    def flex_now():
        pos = positions(per_distance=t["per_distance"], row0=t["row0"], col0=t["col0"])
        pos._block_mask = block_mask
        return pos.attend(t["q"], t["k"], t["v"], scale)[0]

    def gathered(pd, col0, row0=None):
        """A score_mod gathering the table at kv - q, [CLS]'s column col0[h] and row row0[h] (0 if None)."""
        def make():
            def score_mod(score, b, h, q, kv):
                row = 0.0 if row0 is None else row0[h]
                return score + torch.where(q == 0, row, torch.where(kv == 0, col0[h], pd[h, kv - q + (T - 1)]))
            return score_mod
        return make

    pd, row0, col0 = t["per_distance"], t["row0"], t["col0"]
    return {"bias form (SDPA)": bias_form, "flex": flex_now,
            "flex, [CLS] scalars with gradient in the kernel": with_score_mod(gathered(pd, col0, row0)),
            "flex, nothing captured with a gradient": with_score_mod(gathered(pd.detach(), col0.detach())),
            "flex, relative term gathered from the (H, 2T-1) table": with_score_mod(gathered(pd, col0.detach()))}


def time_ms(fn, t: dict, steps: int) -> list[float]:
    leaves = [x for x in t.values() if isinstance(x, torch.Tensor) and x.requires_grad]
    times = []
    for i in range(steps + 2):                                  # two warm-ups (the first compiles)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        y = fn()
        y.backward(torch.ones_like(y) / y.numel() ** 0.5)
        end.record()
        torch.cuda.synchronize()
        for x in leaves:
            x.grad = None
        if i >= 2:
            times.append(start.elapsed_time(end))
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "flex_cuda.json")
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("flex_bench.py needs a CUDA device")
    H, d = 12, 64
    t = tensors(args.batch, args.tokens, H, d, torch.device("cuda"))
    scale = (2 * d) ** -0.5
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "batch": args.batch,
               "tokens": args.tokens, "heads": H, "head_dim": d, "dtype": "bf16", "rows": []}
    for name, fn in variants(t, scale).items():
        try:
            ms = time_ms(fn, t, args.steps)
            row = {"variant": name, "ms": round(statistics.median(ms), 3), "ms_all": [round(x, 3) for x in ms]}
        except Exception as e:                    # a variant the installed torch cannot compile
            row = {"variant": name, "error": f"{type(e).__name__}: {str(e)[:300]}"}
        results["rows"].append(row)
        print(json.dumps(row), flush=True)
    base = next((r["ms"] for r in results["rows"] if r["variant"] == "bias form (SDPA)" and "ms" in r), None)
    for r in results["rows"]:
        if base and "ms" in r:
            r["vs_bias_form"] = round(r["ms"] / base, 3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({r["variant"]: r.get("vs_bias_form") for r in results["rows"]}))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
