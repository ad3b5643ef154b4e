#!/usr/bin/env bash
# The GPU checks in one script, sized for a short loan of a GPU machine (about 8 minutes):
# the benchmark suite on CUDA, the device renderer's equivalence tests on CUDA, then a compiled
# bf16 training run with a resume from it.
# On the machine, from the project root, with .whl/ built by ../shared/device/wheelhouse.sh and
# defusedxml added to it (the GPU image lacks it; pure Python):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl defusedxml
#   bash benchmarks/gpu.sh          (results in $OUT, or ./gpu-results without it)
set -uo pipefail
out=${OUT:-gpu-results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/src
fi
python3 - <<'EOF' || exit 1
import importlib.util, sys
missing = [m for m in ("hydra", "omegaconf", "antlr4", "defusedxml", "kanji") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu.sh: this machine lacks {', '.join(missing)}: add their wheels to .whl/ (see the header)")
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
# The suite: loop overhead, start-up, both renderers (workers and the device half), model-only
# (eager, channels_last, compiled), the full pipeline with each renderer, checkpoints.
timeout 330 python3 benchmarks/run.py --device cuda --quick --workers 16 2>&1 | tee "$out/suite.md"
# Device renderer equivalence on CUDA (the CI runs it on CPU).
INKTRACE_TEST_DEVICE=cuda timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_device_render.py \
  -k "match or tolerances or nearer" \
  2>&1 | tail -n 3 | tee "$out/equivalence.txt"
# A compiled bf16 run rendered on the device, then its resume in eager mode (interchangeable checkpoints).
run=/tmp/gpu-run
rm -rf "$run"
timeout 100 python3 -m inktrace_train data=synthetic training.epochs=2 data.train_samples=8192 \
  training.batch_size=256 hydra.run.dir="$run" 2>&1 | tail -n 15 | tee "$out/train.txt"
timeout 60 python3 -m inktrace_train +resume="$run" training.epochs=3 training.compile=false 2>&1 \
  | tail -n 5 | tee -a "$out/train.txt"
