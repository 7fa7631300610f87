"""``tupe-inspect CHECKPOINT --out DIR [--data DATA]``: what a model's positions learned.

Any checkpoint the project reads (original fairseq files, training runs, own-format and
transformers folders, ELECTRA: its discriminator). Writes ``DIR/report.md`` with PNG figures
and ``DIR/inspect.json`` with the numbers behind them:

* TUPE-A/R: the untied positional correlation ``(p_i U^Q)(p_j U^K)^T / sqrt(2d)`` of every head
  over the first ``--positions`` positions (the term every layer adds to its logits), with
  [CLS]'s two untied values (its row, "[CLS] attends to others", and its column, "others
  attend to [CLS]"); any scheme with the relative bias (TUPE-R, BERT-R, ...): the bias of every
  head against the signed distance j - i.
* With ``--data`` (a ``tupe-preprocess pretrain`` folder): on ``--blocks`` validation blocks,
  for BERT-A/R the paper's decomposition of the first layer's attention logits into word-word,
  word-position, position-word and position-position terms (their sum is the layer's logits;
  BERT-R's relative bias is a fifth term), and for every scheme the attention mass against the
  signed distance per layer and each head's expected distance ``E|i - j|`` under its attention.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Optional

import torch

from .checkpoint import CheckpointError, check_data_dictionary, load_model
from .cli import HelpFormatter, at_least, refuse_inert
from .data.dictionary import Dictionary
from .logs import cli_logging
from .report import _decorate, _save, scheme_color
from .train.evaluate import make_task, positional_limit
from .train.tasks import TaskError

logger = logging.getLogger(__name__)
TERMS = ("word-word", "word-position", "position-word", "position-position")


def _r(t: torch.Tensor, digits: int = 5):
    """A tensor as nested lists of rounded floats (for inspect.json)."""
    return torch.round(t.detach().double() * 10 ** digits).div(10 ** digits).tolist()


# ----------------------------------------------------------------------------- parameters only
def positional_terms(model, n: int) -> dict:
    """The positional terms the model adds to every layer's logits, over n positions."""
    enc, out = model.encoder, {}
    if enc.untied_pos is not None:
        pos_q, pos_k = enc.untied_pos.projections(n)                                   # 2 x (H, n+1, d)
        out["untied"] = {"matrix": enc.untied_pos.bias(n).detach(),                     # (H, n, n)
                         "cls_to_others": (pos_q[:, 0] * pos_k[:, 0]).sum(-1).detach(),  # theta_1 (H,)
                         "others_to_cls": (pos_q[:, 1] * pos_k[:, 1]).sum(-1).detach(),  # theta_2 (H,)
                         "untie_cls": enc.untied_pos.untie_cls}
    if enc.rel_pos_bias is not None:
        per_distance, cls_row, cls_col = enc.rel_pos_bias.factors(n)                    # (H, 2n-1)
        out["relative"] = {"distances": list(range(-(n - 1), n)), "bias": per_distance.detach(),
                           "cls_to_others": None if cls_row is None else cls_row.detach(),
                           "others_to_cls": None if cls_col is None else cls_col.detach()}
    return out


# ----------------------------------------------------------------------------- with data
def validation_blocks(model, data: Path, length: int, count: int) -> torch.Tensor:
    """Up to ``count`` validation blocks of ``length`` tokens (``<s>`` + running text cut at that
    length, no masking): (K, length)."""
    task = make_task(model, str(data), length, sample_break_mode="none")
    blocks = task.dataset("valid", 0).blocks
    rows = [blocks[int(i)] for i in (blocks.sizes == length).nonzero()[0][:count]]     # sizes: no block read
    if not rows:
        raise TaskError(f"{data}: no validation block of {length} tokens (try a smaller --positions)")
    return torch.stack([torch.as_tensor(r, dtype=torch.long) for r in rows])


def _split_layer_norm(ln, a: torch.Tensor, b: torch.Tensor):
    """LayerNorm(a + b) written as a' + b' (exact): the mean is linear and the scale is the
    token's own, so each part is centred and divided by it; the LayerNorm bias goes to a'."""
    x = a + b
    sigma = torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + ln.eps)
    a_, b_ = (a - a.mean(-1, keepdim=True)) / sigma, (b - b.mean(-1, keepdim=True)) / sigma
    return a_ * ln.weight + ln.bias, b_ * ln.weight


def logit_decomposition(model, tokens: torch.Tensor) -> dict:
    """BERT-A/R's first-layer logits (B, H, T, T) as the four word/position terms (+ the relative
    bias): their sum is what the layer adds its mask to and puts through the softmax."""
    enc, cfg = model.encoder, model.cfg
    if enc.embed_positions is None:
        raise ValueError(f"{cfg.name} adds no positions to its input: the decomposition is for BERT-A/R")
    w = enc.embed_tokens(tokens)                                                       # (B, T, C)
    p = enc.embed_positions.weight[: tokens.size(1)].expand_as(w)                       # (B, T, C)
    if enc.emb_layer_norm is not None:
        w, p = _split_layer_norm(enc.emb_layer_norm, w, p)
    layer = enc.layers[0]
    if layer.normalize_before:
        w, p = _split_layer_norm(layer.self_attn_layer_norm, w, p)
    attn, H = layer.self_attn, layer.self_attn.num_heads
    Wq, Wk, _ = attn.in_proj.weight.chunk(3)
    bq, bk, _ = attn.in_proj.bias.chunk(3)

    def heads(x):                                                                      # (B, T, C) -> (B, H, T, d)
        return x.view(x.size(0), x.size(1), H, -1).transpose(1, 2)
    qw, qp = heads(w @ Wq.t() + bq), heads(p @ Wq.t())
    kw, kp = heads(w @ Wk.t() + bk), heads(p @ Wk.t())
    s = attn.scaling
    terms = {"word-word": qw @ kw.transpose(-1, -2) * s, "word-position": qw @ kp.transpose(-1, -2) * s,
             "position-word": qp @ kw.transpose(-1, -2) * s, "position-position": qp @ kp.transpose(-1, -2) * s}
    bias = enc.positional_bias(tokens.size(1))
    if bias is not None:
        terms["relative"] = bias.unsqueeze(0).expand_as(terms["word-word"])
    return {k: v.detach() for k, v in terms.items()}


def attention_distances(model, tokens: torch.Tensor) -> dict:
    """Per layer: the attention mass at each signed distance j - i (averaged over heads, queries
    and blocks) and each head's expected |i - j| (averaged over queries and blocks)."""
    T = tokens.size(1)
    with torch.no_grad():
        attentions = model.encoder.encode(tokens, output_attentions=True).attentions      # L x (B, H, T, T)
    i = torch.arange(T)
    signed = (i[None, :] - i[:, None])                                                  # (T, T): j - i
    mass, expected = [], []
    for probs in attentions:
        expected.append((probs * signed.abs()).sum(-1).mean(dim=(0, 2)))               # (H,)
        per_distance = torch.zeros(2 * T - 1)
        per_distance.index_add_(0, (signed + T - 1).flatten(), probs.mean(dim=(0, 1)).flatten())
        mass.append(per_distance / T)                                                   # sums to 1
    return {"distances": list(range(-(T - 1), T)), "mass": torch.stack(mass), "expected": torch.stack(expected),
            "uniform_expected": float(signed.abs().float().mean())}


# ----------------------------------------------------------------------------- figures
def _grid(n: int):
    cols = min(4, n)
    return math.ceil(n / cols), cols


def _heatmaps(plt, mats, titles, suptitle, cbar_label, xlabel="key position j", ylabel="query position i"):
    rows, cols = _grid(len(mats))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.1 * rows), squeeze=False, layout="constrained")
    vmax = max(float(m.abs().max()) for m in mats) or 1.0
    for k, ax in enumerate(axes.flat):
        if k >= len(mats):
            ax.axis("off")
            continue
        im = ax.imshow(mats[k].numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_title(titles[k], fontsize=8)
        ax.set_xlabel(xlabel, fontsize=7)
        ax.set_ylabel(ylabel, fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(suptitle, fontsize=10)
    fig.colorbar(im, ax=axes, shrink=0.8, label=cbar_label)
    return fig


def inspect(model, out: Path, positions: int = 128, data: Optional[Path] = None, blocks: int = 16) -> Path:
    """Write ``out/report.md``, its figures and ``out/inspect.json``; returns the report's path."""
    import matplotlib  # optional heavy import: only to plot
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # optional heavy import: only to plot

    cfg = model.cfg
    n = min(positions, positional_limit(model) or positions)
    out.mkdir(parents=True, exist_ok=True)
    numbers: dict = {"scheme": cfg.name, "size": cfg.size_name, "positions": n, "heads": cfg.encoder_attention_heads}
    md = [f"# What the positions of this {cfg.name} model learned", "",
          f"Model: {cfg.name} ({cfg.size_name}), max_positions {cfg.max_positions}. Numbers: `inspect.json`.", ""]
    if n < positions:
        note = f"{positions} positions asked; {n} drawn: the positional tables of {cfg.name} cover {n}"
        logger.warning(note)
        md += [note + ".", ""]
    terms = positional_terms(model, n)
    if "untied" in terms:
        u = terms["untied"]
        titles = [f"head {h}: [CLS]->others {float(u['cls_to_others'][h]):+.2f}, others->[CLS] "
                  f"{float(u['others_to_cls'][h]):+.2f}" if u["untie_cls"] else f"head {h}" for h in range(len(u["matrix"]))]
        fig = _heatmaps(plt, list(u["matrix"]), titles, f"TUPE's untied positional correlation (p_i U^Q)(p_j U^K)^T / "
                        f"sqrt(2d), first {n} positions (position 0 = [CLS])", "added to the attention logit")
        png = _save(fig, plt, out, "untied_correlation.png")
        md += ["## Untied positional correlation", "", f"![untied positional correlation]({png})", "",
               "The term every layer adds to its attention logits for query position i and key position j, per head. "
               + ("Row and column 0 are [CLS]'s two learned values (untied from positions): its column is what "
                  "every query gives [CLS]; its row, one value added to every logit of [CLS]'s row, is removed by "
                  "softmax: it changes nothing and gets no gradient (docs/formats.md)." if u["untie_cls"] else ""), ""]
        numbers["untied"] = {k: (_r(v) if isinstance(v, torch.Tensor) else v) for k, v in u.items()}
    if "relative" in terms:
        r = terms["relative"]
        rows, cols = _grid(len(r["bias"]))
        fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.6 * rows), squeeze=False, sharey=True)
        for k, ax in enumerate(axes.flat):
            if k >= len(r["bias"]):
                ax.axis("off")
                continue
            ax.plot(r["distances"], r["bias"][k].numpy(), "-", color=scheme_color(cfg.name))
            ax.axvline(0, color="grey", linewidth=0.5)
            _decorate(ax, "signed distance j - i (key - query)", "bias added to the logit", f"head {k}", legend=False)
        fig.suptitle(f"Relative position bias per head (T5 buckets, {cfg.rel_pos_bins} buckets, max distance {cfg.max_rel_pos})")
        md += ["## Relative position bias", "", f"![relative bias]({_save(fig, plt, out, 'relative_bias.png')})", "",
               "Each head's learned bias against the signed distance from query to key (left: keys before the query)."
               + (" [CLS]'s own values: its column " + ", ".join(f"{float(x):+.2f}" for x in r["others_to_cls"])
                  + "; its row " + ", ".join(f"{float(x):+.2f}" for x in r["cls_to_others"])
                  + " (a constant over [CLS]'s row, which softmax removes: no effect, no gradient)."
                  if r["cls_to_others"] is not None else ""), ""]
        numbers["relative"] = {k: (_r(v) if isinstance(v, torch.Tensor) else v) for k, v in r.items()}
    if not terms:
        what = {"rope": "rotations of q and k", "alibi": "a fixed distance penalty", "none": "no positions",
                "absolute": "positions added to the input: see the decomposition with --data"}[cfg.pos_encoding]
        md += [f"{cfg.name} has no learned positional term to draw ({what}).", ""]

    if data is not None:
        tokens = validation_blocks(model, data, n, blocks)
        numbers["blocks"] = {"count": tokens.size(0), "length": tokens.size(1)}
        if model.encoder.embed_positions is not None:
            with torch.no_grad():
                dec = logit_decomposition(model, tokens)
            magnitude = {k: float(v.abs().mean()) for k, v in dec.items()}
            mats = [v.mean(dim=(0, 1)) for v in dec.values()]
            fig = _heatmaps(plt, mats, [f"{k}: mean |.| {magnitude[k]:.3f}" for k in dec],
                            f"First layer's attention logits, term by term (mean over {tokens.size(0)} blocks and heads)",
                            "contribution to the logit")
            md += ["## First-layer logits: word and position terms", "",
                   f"![logit decomposition]({_save(fig, plt, out, 'logit_decomposition.png')})", "",
                   "The paper's decomposition of BERT's first-layer logits ((w_i + p_i) W^Q)((w_j + p_j) W^K)^T / sqrt(d) "
                   "into word-word, word-position, position-word and position-position terms (the embedding LayerNorm "
                   "split exactly: each part centred and divided by the token's own scale, its bias with the word part)"
                   + (", and the relative bias" if "relative" in dec else "") + ". They add up to the layer's logits.", "",
                   "| term | mean magnitude |", "|---|---:|", *[f"| {k} | {v:.4f} |" for k, v in magnitude.items()], ""]
            numbers["decomposition"] = {"mean_magnitude": magnitude, "mean_heatmap": {k: _r(m) for k, m in zip(dec, mats)}}
        dist = attention_distances(model, tokens)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
        for layer, mass in enumerate(dist["mass"]):
            ax1.plot(dist["distances"], mass.numpy(), "-", color=plt.cm.viridis(layer / max(1, len(dist["mass"]) - 1)),
                     label=f"layer {layer + 1}")
        ax1.set_yscale("log")
        _decorate(ax1, "signed distance j - i (key - query)", "attention mass (mean over heads, queries)",
                  "Where attention goes, per layer")
        im = ax2.imshow(dist["expected"].numpy(), cmap="magma", aspect="auto")
        ax2.set_xlabel("head")
        ax2.set_ylabel("layer")
        ax2.set_yticks(range(len(dist["expected"])), [str(k + 1) for k in range(len(dist["expected"]))])
        ax2.set_title(f"Expected distance E|i - j| per head (uniform attention: {dist['uniform_expected']:.1f})", fontsize=10)
        fig.colorbar(im, ax=ax2, label="tokens")
        png = _save(fig, plt, out, "attention_distance.png")
        md += ["## How local the attention is", "", f"![attention distance]({png})", "",
               f"On {tokens.size(0)} validation blocks of {tokens.size(1)} tokens: the attention probability mass at each "
               f"signed distance (mean over heads and queries) per layer, and each head's expected distance between "
               f"query and key; attention spread uniformly over the block would give {dist['uniform_expected']:.1f}.", ""]
        numbers["attention_distance"] = {"distances": dist["distances"], "mass": _r(dist["mass"], 6),
                                         "expected": _r(dist["expected"], 3), "uniform_expected": dist["uniform_expected"]}
    (out / "inspect.json").write_text(json.dumps(numbers) + "\n")
    report = out / "report.md"
    report.write_text("\n".join(md))
    return report


def main(argv=None) -> int:
    cli_logging()
    p = argparse.ArgumentParser(prog="tupe-inspect", formatter_class=HelpFormatter, description=__doc__)
    p.add_argument("checkpoint", help="checkpoint file, training run, own-format or transformers folder")
    p.add_argument("--out", type=Path, required=True, help="folder for report.md, the figures and inspect.json")
    p.add_argument("--positions", type=at_least(2), default=128, help="positions drawn (and block length with --data)")
    p.add_argument("--data", type=Path, default=None, help="a tupe-preprocess pretrain folder: decomposition and "
                   "attention distances on its validation blocks")
    p.add_argument("--blocks", type=at_least(1), default=16, help="validation blocks used with --data")
    args = p.parse_args(argv)
    refuse_inert(p, argv, [("blocks", args.data is not None, "it counts the blocks of --data")])
    try:
        model = load_model(args.checkpoint)
        if args.data is not None and (args.data / "dict.txt").is_file():
            check_data_dictionary(args.checkpoint, Dictionary.load(args.data / "dict.txt"), args.data)
        report = inspect(model, args.out, args.positions, args.data, args.blocks)
    except (CheckpointError, TaskError, FileNotFoundError, ValueError) as e:
        print(f"tupe-inspect: error: {e}", file=sys.stderr)
        return 1
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
