"""``tupe-preprocess``: the original pretraining and GLUE preprocessing, one command each.

    tupe-preprocess pretrain --input wiki.txt books.txt --destdir data-bin/corpus --workers 8
    tupe-preprocess glue --glue-dir glue_data --tasks ALL --bpe-dir data-bin/corpus --destdir data-bin/glue
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from ..cli import HelpFormatter, Stopped, at_least, fraction, refuse_inert, stop_on_sigterm
from ..data.bpe import BPEError
from ..data.dictionary import DictionaryError
from ..logs import cli_logging
from . import task
from .common import PreprocessError
from .glue import run_glue
from .pretrain import PretrainOptions, run_pretrain
from .task import run_task
from .text import LineFilter, describe_repairs


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=at_least(1), default=1, help="worker processes (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tupe-preprocess", description=__doc__,
                                     formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="raw corpus -> bpe-code, dict.txt, train/valid .bin/.idx",
                       formatter_class=HelpFormatter)
    p.add_argument("--input", nargs="+", type=Path, required=True,
                   help="plain text (paragraph per line, blank line = break) or WikiExtractor output")
    p.add_argument("--destdir", type=Path, required=True,
                   help="output folder (written whole at the end; an existing one needs --force)")
    p.add_argument("--cased", action="store_true", help="keep case (the paper's model is uncased)")
    f = LineFilter()
    p.add_argument("--min-chars", type=int, default=f.min_chars, help="shortest kept paragraph")
    p.add_argument("--max-chars", type=int, default=f.max_chars, help="longest kept paragraph")
    p.add_argument("--min-letters", type=int, default=f.min_letters, help="fewest ASCII letters")
    p.add_argument("--min-letter-ratio", type=fraction, default=f.min_letter_ratio,
                   help="minimum share of ASCII letters in a kept line")
    p.add_argument("--max-backslash-ratio", type=fraction, default=f.max_backslash_ratio,
                   help="maximum share of backslashes in a kept line")
    p.add_argument("--max-pipe-ratio", type=fraction, default=f.max_pipe_ratio, help="maximum share of '|' in a kept line")
    p.add_argument("--keep-vocab-fraction", type=fraction, default=0.21,
                   help="keep the most frequent fraction of distinct words, others -> <unk> (1 = off)")
    p.add_argument("--valid-every", type=at_least(2), default=200, help="every Nth paragraph goes to valid")
    p.add_argument("--min-sentence-words", type=int, default=5,
                   help="sentences shorter than this are merged with a neighbour")
    p.add_argument("--max-merged-chars", type=int, default=250, help="longest merged sentence")
    p.add_argument("--min-line-chars", type=int, default=20, help="drop shorter sentence lines")
    p.add_argument("--bpe-merges", type=at_least(1), default=32640, help="merges to learn")
    p.add_argument("--bpe-code", type=Path, help="reuse these fastBPE codes instead of learning")
    p.add_argument("--nwords", type=at_least(8), default=32768, help="dictionary size incl. the 7 specials")
    p.add_argument("--dict", type=Path, help="reuse this dict.txt instead of building one")
    p.add_argument("--keep-text", action="store_true", help="keep the intermediate text files")
    _add_common(p)

    g = sub.add_parser("glue", help="GLUE TSVs -> TASK-bin/{input0,input1,label}", formatter_class=HelpFormatter)
    g.add_argument("--glue-dir", type=Path, required=True, help="folder with CoLA/, SST-2/, ...")
    g.add_argument("--tasks", default="ALL", help="ALL or a comma-separated list (CoLA,SST-2,...)")
    g.add_argument("--bpe-dir", type=Path, required=True,
                   help="the pretraining output (bpe-code and dict.txt)")
    g.add_argument("--destdir", type=Path, required=True,
                   help="output folder (written whole at the end; an existing one needs --force)")
    g.add_argument("--cased", action="store_true", help="keep case")
    _add_common(g)

    t = sub.add_parser("task", help="your own labelled TSV/CSV -> NAME-bin/{input0,input1,label} + task.json",
                       description=task_doc(), formatter_class=HelpFormatter)
    t.add_argument("--train", type=Path, required=True, help="the training file (TSV, or CSV by extension)")
    t.add_argument("--valid", type=Path, required=True, help="the validation file, same columns")
    t.add_argument("--test", type=Path, help="optional; unlabeled if it lacks the label column")
    t.add_argument("--text-columns", nargs="+", required=True,
                   help="1-based number(s) or header name(s): one column, or two for a sentence pair")
    t.add_argument("--label-column", required=True, help="1-based number or header name")
    t.add_argument("--header", action="store_true", help="the first line of each file names the columns")
    t.add_argument("--no-header-check", action="store_true",
                   help="without --header, a first row that looks like a header (its label is a column name, "
                        "or a label seen nowhere else) is an error; this flag keeps it as data")
    t.add_argument("--delimiter", default="auto", help="auto (.csv: comma, else tab), tab, comma or a character")
    t.add_argument("--regression", nargs=2, type=float, metavar=("LO", "HI"),
                   help="numeric labels in [LO, HI] (stored scaled to [0, 1]) instead of classes")
    t.add_argument("--bpe-dir", type=Path, required=True, help="the pretraining output (bpe-code and dict.txt)")
    t.add_argument("--destdir", type=Path, required=True, help="the task folder to write, e.g. data-bin/topics-bin")
    t.add_argument("--cased", action="store_true", help="keep case")
    _add_common(t)
    return parser


def task_doc() -> str:

    return task.__doc__


def main(argv=None) -> int:
    cli_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    command = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[args.command]
    refuse_inert(command, argv, [
        ("bpe_merges", getattr(args, "bpe_code", None) is None, "--bpe-code gives the merges"),
        ("nwords", getattr(args, "dict", None) is None, "--dict gives the dictionary"),
        ("no_header_check", not getattr(args, "header", False), "with --header the first line is read as the header")])
    try:
        with stop_on_sigterm():
            return _run(args)
    except (KeyboardInterrupt, Stopped) as e:
        signum = e.signum if isinstance(e, Stopped) else signal.SIGINT
        done = " (GLUE: the task folders finished before it are complete; --tasks names the others)" \
            if args.command == "glue" else ""
        print(f"tupe-preprocess: stopped by {signal.Signals(signum).name}: the output it was writing is not there, "
              f"its temporary files are removed{done}; rerun the command", file=sys.stderr)
        return 128 + signum


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "pretrain":

            opts = PretrainOptions(
                inputs=args.input, destdir=args.destdir, workers=args.workers, cased=args.cased,
                filter=LineFilter(args.min_chars, args.max_chars, args.min_letters, args.min_letter_ratio,
                                  args.max_backslash_ratio, args.max_pipe_ratio),
                keep_vocab_fraction=args.keep_vocab_fraction, valid_every=args.valid_every,
                min_sentence_words=args.min_sentence_words, max_merged_chars=args.max_merged_chars,
                min_line_chars=args.min_line_chars, bpe_merges=args.bpe_merges, bpe_code=args.bpe_code,
                dict=args.dict, nwords=args.nwords, show_progress=not args.no_progress,
                force=args.force, keep_text=args.keep_text)
            s = run_pretrain(opts)
            st = s["stats"]
            print(f"tupe-preprocess: {args.destdir}: {st.get('lines_read', 0)} lines read, "
                  f"{st.get('paragraphs_kept', 0)} paragraphs kept, train {st.get('train_sentences', 0)} / "
                  f"valid {st.get('valid_sentences', 0)} lines, {s['tokens']} tokens, "
                  f"dict {s['dictionary_size']}, unk {100 * s['unk_rate']:.2f}%, "
                  f"{st.get('invalid_utf8_bytes', 0)} invalid UTF-8 or NUL bytes dropped, {s['duration_s']:.1f}s "
                  f"(details in preprocess.json)", file=sys.stderr)
        elif args.command == "task":

            run_task(args.train, args.valid, args.test, args.text_columns, args.label_column, args.bpe_dir,
                     args.destdir, header=args.header, delimiter=args.delimiter,
                     regression=tuple(args.regression) if args.regression else None, workers=args.workers,
                     cased=args.cased, show_progress=not args.no_progress, force=args.force,
                     header_check=not args.no_header_check)
        else:

            results = run_glue(args.glue_dir, args.tasks, args.bpe_dir, args.destdir, workers=args.workers,
                               cased=args.cased, show_progress=not args.no_progress, force=args.force)
            for task, info in results.items():
                rows = ", ".join(f"{k} {v['rows']}" for k, v in info["splits"].items())
                skipped = sum(v.get("skipped_malformed", 0) for v in info["splits"].values())
                extra = f" ({skipped} malformed rows skipped)" if skipped else ""
                for split, v in info["splits"].items():
                    if repaired := describe_repairs(v.get("repairs", {})):
                        extra += f"; {split}: {repaired}"
                print(f"tupe-preprocess: {task}: {rows}{extra}", file=sys.stderr)
    except (PreprocessError, DictionaryError, BPEError, FileNotFoundError) as e:
        print(f"tupe-preprocess: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
