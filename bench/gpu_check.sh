#!/usr/bin/env bash
# The GPU checks, for a machine with CUDA (about 5 minutes on one H200): the CUDA-marked tests
# (criteria and top-k equal to the CPU's, bit-exact resume, a trial end to end), then fractional-GPU
# packing and trials per hour at gpu: 1, 0.5, 0.25, 0.125, written to docs/benchmarks.md.
#
#     bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA here: nothing to check')"
python -m pytest -q -m gpu tests/
python bench/bench_gpu.py --out docs/benchmarks.md
