"""``tupe-convert``: original (fairseq) checkpoint <-> own format (config.json + safetensors).

    tupe-convert checkpoint.pt  out_dir/          # original -> own (dict.txt, bpe-code copied)
    tupe-convert out_dir/       checkpoint.pt     # own -> original layout (readable by the original code)
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from ..checkpoint import (BPE_FILE, CONFIG_FILE, DICT_FILE, CheckpointError, fairseq_args,
                          load_model, read_checkpoint, read_pretrained_config, resolve_checkpoint,
                          save_fairseq, save_pretrained)

_PLAIN = (str, int, float, bool, type(None))


def _plain_args(args) -> dict:
    """The JSON-representable part of a checkpoint's args (kept for the way back)."""
    out = {}
    for k, v in vars(args or argparse.Namespace()).items():
        if isinstance(v, _PLAIN) or (isinstance(v, (list, tuple)) and all(isinstance(x, _PLAIN) for x in v)):
            out[k] = list(v) if isinstance(v, tuple) else v
    return out


def to_own(src: Path, dest: Path) -> None:
    ckpt = resolve_checkpoint(src)
    model = load_model(ckpt)
    save_pretrained(model, dest, extra={"fairseq_args": _plain_args(read_checkpoint(ckpt).get("args"))})


def to_fairseq(src: Path, dest: Path, fp16: bool) -> None:
    model = load_model(src)
    base = read_pretrained_config(src).get("fairseq_args")
    save_fairseq(model, dest, args=fairseq_args(model.cfg, base), fp16=fp16)
    for name in (DICT_FILE, BPE_FILE):   # keep the vocabulary beside the converted file
        if (src / name).is_file() and not (dest.parent / name).exists():
            shutil.copyfile(src / name, dest.parent / name)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tupe-convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path, help="checkpoint file / training dir, or an own-format dir")
    p.add_argument("dest", type=Path, help="output directory (own format) or .pt file (original)")
    p.add_argument("--to", choices=("auto", "tupe", "fairseq"), default="auto",
                   help="target format (auto: the other one)")
    p.add_argument("--fp16", action="store_true", help="store weights in float16 (original format)")
    args = p.parse_args(argv)
    target = args.to
    if target == "auto":
        target = "fairseq" if (args.src / CONFIG_FILE).is_file() else "tupe"
    try:
        if target == "tupe":
            to_own(args.src, args.dest)
        else:
            if not (args.src / CONFIG_FILE).is_file():
                raise CheckpointError(f"{args.src}: no {CONFIG_FILE}; --to fairseq needs an own-format directory")
            to_fairseq(args.src, args.dest, args.fp16)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"tupe-convert: error: {e}", file=sys.stderr)
        return 1
    print(f"tupe-convert: wrote {args.dest} ({target} format)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
