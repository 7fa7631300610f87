#!/usr/bin/env bash
# The WordNet study with the length and word-order sections (docs/study.md).
set -euo pipefail
export PATH=/work/main/.venv/bin:$PATH
OUT=runs/wordnet-length
mkdir -p $OUT/data && python -c "from pathlib import Path; from tupe.demo import prepare_corpus; prepare_corpus(Path('$OUT/data'), None)"
tupe-preprocess pretrain --input $OUT/data/corpus.txt --destdir $OUT/data/bin --bpe-merges 8000 --nwords 16384 \
    --valid-every 50 --workers 2 --no-progress --min-chars 40 --min-letters 30 --force
tupe-study --corpus $OUT/data/bin --schemes TUPE-R,TUPE-A,BERT-A,RoPE,ALiBi,NoPE --lrs 1e-3 --updates 600 \
    --eval-lengths 128,256,512 --out $OUT/study
for s in TUPE-R TUPE-A BERT-A; do
  tupe-inspect $OUT/study/pretrain/$s/lr0.001/checkpoint_last.pt --out $OUT/inspect/$s --data $OUT/data/bin --blocks 32
done
