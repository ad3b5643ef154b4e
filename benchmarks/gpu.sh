#!/usr/bin/env bash
# The GPU checks in one script, sized for a short loan of a GPU machine (about 8 minutes):
# the benchmark suite on CUDA, then a compiled bf16 training run with a resume from it.
# On the machine, from the project root, with .whl/ built by ../shared/device/wheelhouse.sh:
#   bash benchmarks/gpu.sh          (results in $OUT, or ./gpu-results without it)
set -uo pipefail
out=${OUT:-gpu-results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/src
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
timeout 300 python3 benchmarks/run.py --device cuda --quick --workers 8 2>&1 | tee "$out/suite.md"
run=/tmp/gpu-run
rm -rf "$run"
timeout 150 python3 -m inktrace_train data=synthetic training.epochs=2 data.train_samples=8192 \
  training.batch_size=256 hydra.run.dir="$run" 2>&1 | tail -n 15 | tee "$out/train.txt"
timeout 90 python3 -m inktrace_train +resume="$run" training.epochs=3 training.compile=false 2>&1 \
  | tail -n 5 | tee -a "$out/train.txt"
