#!/usr/bin/env bash
# The GPU checks in one run, for a session lent a GPU (about 6-9 min on one H100/H200):
# the CUDA tests (FlexAttention kernel, fp16/bf16, --attn-impl flex and --compile on CUDA, the
# earlier GPU tests), then the GPU training benchmark (bert_base, 32 x 512 and 128 x 128, bf16
# (fp16 ran at the same speed on 2026-12-04: DTYPES=bf16,fp16 for both), bias form, flex and
# torch.compile rows, tokens/s, peak memory, MFU, fraction of the matmul rate, and kernel-time
# profiles of TUPE-R's bias, flex and compiled steps), then the host's floor: the same depth at
# tiny widths on the GPU (benchmarks/host_bench.py --device cuda, under a minute), then one
# layer's attention alone in the flex variants (benchmarks/flex_bench.py, about 1 min).
# Seen on one H200 (2026-12-04, bf16 and fp16, no compile rows): tests 2 min, training
# benchmark 4 min at STEPS=6.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]          # needs a CUDA build of torch
#   STEPS=6 bash benchmarks/gpu_check.sh            # fewer timed steps per row (default 10)
#
# The project's other dependencies (and pytest, transformers for the HF rows) must be
# importable. On a machine without a package index, download them beforehand where there is
# one, into an ignored folder carried along, e.g.
#   pip download -d .wheels numpy safetensors tokenizers sacremoses regex sentencex tqdm scipy \
#       scikit-learn matplotlib pytest tensorboard transformers
# and this script installs from it (never torch: the machine's CUDA build is kept).
# Where the machine's Python already holds torch and most of them (an image with PyTorch,
# transformers, scipy, ...: on 2026-12-04 only sacremoses and sentencex were missing), it is
# quicker to install just those wheels aside and put the checkout on the path; then `import tupe`
# works and nothing is installed here:
#   pip install --no-index --no-deps --target /tmp/site .wheels/sacremoses-*.whl .wheels/sentencex-*.whl
#   PYTHONPATH=/tmp/site:$PWD bash benchmarks/gpu_check.sh
set -o pipefail
out=${1:-benchmarks/results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
PY=$(command -v python || command -v python3)   # images with only python3
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" || exit 1
if ! "$PY" -c "import tupe, pytest" 2>/dev/null; then
  if [ -d .wheels ]; then
    "$PY" -m pip install -q --no-index --find-links .wheels --no-deps -e . &&
      "$PY" -m pip install -q --no-index --find-links .wheels .wheels/*.whl || exit 1
  else
    "$PY" -m pip install -q -e '.[test,bench]' || exit 1      # needs a package index
  fi
fi
"$PY" -m pytest -q -m "cuda or not cuda" -p no:cacheprovider tests/model/test_cuda.py tests/train/test_cuda_train.py \
  tests/model/test_flex.py::test_padding_block_mask_matches_create_block_mask \
  2>&1 | tee "$out/cuda_tests.log"
tests=$?
"$PY" benchmarks/train_bench.py --device cuda --profile --compile --dtypes "${DTYPES:-bf16}" --steps "${STEPS:-10}" --out "$out/train_cuda_bert_base.json" 2>&1 | tee "$out/train_cuda_bert_base.log"
bench=$?
"$PY" benchmarks/host_bench.py --device cuda --out "$out/host_cuda.json" 2>&1 | tee "$out/host_cuda.log"
host=$?
"$PY" benchmarks/flex_bench.py --out "$out/flex_cuda.json" 2>&1 | tee "$out/flex_cuda.log"
exit $(( tests || bench || host || $? ))
