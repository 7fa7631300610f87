#!/usr/bin/env python
"""Regenerate the demo data shipped in tupe/demo_data/ from WordNet 3.0.

    sudo apt-get install wordnet-base          # Debian/Ubuntu: /usr/share/wordnet/data.*
    python scripts/make_demo_data.py [--wordnet-dir /usr/share/wordnet]

Writes
  corpus.txt.gz   pretraining text: one paragraph per synset ("words: gloss; examples"),
                  all four parts of speech, in the files' order;
  task/{train,dev,test}.tsv
                  a real labelled task in GLUE's SST-2 layout (sentence<TAB>label; the test file
                  index<TAB>sentence): does a noun gloss describe a living thing? label 1 for the
                  lexicographer files noun.animal, noun.plant, noun.person and noun.body, 0 for
                  every other noun file; balanced, deterministic sample;
  LICENSE.wordnet the WordNet 3.0 licence, which permits copying with the notice.
"""

from __future__ import annotations

import argparse
import gzip
import random
import re
from pathlib import Path

LIVING = {5: "noun.animal", 8: "noun.body", 18: "noun.person", 20: "noun.plant"}
LICENSE = """WordNet Release 3.0

This software and database is being provided to you, the LICENSEE, by Princeton University
under the following license. By obtaining, using and/or copying this software and database,
you agree that you have read, understood, and will comply with these terms and conditions.:

Permission to use, copy, modify and distribute this software and database and its
documentation for any purpose and without fee or royalty is hereby granted, provided that you
agree to comply with the following copyright notice and statements, including the disclaimer,
and that the same appear on ALL copies of the software, database and documentation, including
modifications that you make for internal use or for distribution.

WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved.

THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO
REPRESENTATIONS OR WARRANTIES, EXPRESS OR IMPLIED. BY WAY OF EXAMPLE, BUT NOT LIMITATION,
PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF MERCHANT- ABILITY OR FITNESS
FOR ANY PARTICULAR PURPOSE OR THAT THE USE OF THE LICENSED SOFTWARE, DATABASE OR
DOCUMENTATION WILL NOT INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR OTHER
RIGHTS.

The name of Princeton University or Princeton may not be used in advertising or publicity
pertaining to distribution of the software and/or database. Title to copyright in this
software, database and any associated documentation shall at all times remain with Princeton
University and LICENSEE agrees to preserve same.
"""


def synsets(path: Path):
    """(lex_filenum, words, gloss) of each synset line of a WordNet data.* file."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  "):            # the licence header
                continue
            head, _, gloss = line.rstrip("\n").partition(" | ")
            fields = head.split()
            lex_filenum, n_words = int(fields[1]), int(fields[3], 16)
            words = [fields[4 + 2 * i].replace("_", " ") for i in range(n_words)]
            words = [re.sub(r"\(.*\)$", "", w) for w in words]
            yield lex_filenum, words, gloss.strip()


def definition(gloss: str) -> str:
    """The gloss without its quoted examples."""
    return re.split(r';\s*"', gloss)[0].strip().rstrip(";").strip()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wordnet-dir", type=Path, default=Path("/usr/share/wordnet"))
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tupe" / "demo_data")
    p.add_argument("--train", type=int, default=4000)
    p.add_argument("--dev", type=int, default=800)
    p.add_argument("--test", type=int, default=400)
    args = p.parse_args()
    (args.out / "task").mkdir(parents=True, exist_ok=True)
    nouns = []
    with gzip.open(args.out / "corpus.txt.gz", "wt", encoding="utf-8", compresslevel=9) as corpus:
        for pos in ("noun", "verb", "adj", "adv"):
            path = args.wordnet_dir / f"data.{pos}"
            if not path.is_file():
                raise SystemExit(f"{path} not found: install wordnet-base or pass --wordnet-dir")
            for lex, words, gloss in synsets(path):
                corpus.write(f"{', '.join(words[:3])}: {gloss}\n")
                if pos == "noun":
                    nouns.append((int(lex in LIVING), definition(gloss)))
    rng = random.Random(2021)
    living = [s for s in nouns if s[0] == 1 and len(s[1].split()) >= 3]
    other = [s for s in nouns if s[0] == 0 and len(s[1].split()) >= 3]
    rng.shuffle(living)
    rng.shuffle(other)
    half = (args.train + args.dev + args.test) // 2
    rows = living[:half] + other[:half]
    rng.shuffle(rows)
    train, dev, test = rows[: args.train], rows[args.train: args.train + args.dev], rows[args.train + args.dev:]
    clean = lambda s: s.replace("\t", " ")  # noqa: E731
    (args.out / "task" / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"{clean(s)}\t{y}\n" for y, s in train))
    (args.out / "task" / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"{clean(s)}\t{y}\n" for y, s in dev))
    (args.out / "task" / "test.tsv").write_text(
        "index\tsentence\n" + "".join(f"{i}\t{clean(s)}\n" for i, (_, s) in enumerate(test)))
    (args.out / "LICENSE.wordnet").write_text(LICENSE)
    print(f"wrote {args.out}: {len(nouns)} noun synsets; task train {len(train)}, dev {len(dev)}, test {len(test)}")


if __name__ == "__main__":
    main()
