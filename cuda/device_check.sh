#!/usr/bin/env bash
# The GPU check, run from the repository root on a machine with an NVIDIA GPU (sm_80+), nvcc,
# CMake, ninja, pybind11 and PyTorch with CUDA:
#
#     bash cuda/device_check.sh [budget-seconds]
#     STAGES="build pytest" bash cuda/device_check.sh    (only the stages named)
#
# Builds both modules in build/gpu (with fastconv.jax's XLA FFI handlers, CPU and CUDA, when jax
# is installed), then runs, each stage under its own time limit and all within the budget
# (default 420 s): the GPU tests (tests/test_cuda.py, slow ones included), fastconv.jax on the
# GPU (tests/jax_adapter/test_jax_cuda.py: parity with lax on a CUDA device; needs jax's CUDA
# plugin, else its GPU tests skip and say so),
# 200 random geometries and the reference suite vs cuDNN (cuda/device_checks.py), a CUDA-graph
# capture of a conv net step, per-call overhead, `fastconv bench --device cuda` (float16,
# bfloat16, float32; all three passes; batch 32; cuDNN with benchmark=True as the peer; float16
# once more with the Hopper core off, FASTCONV_CUDA_SM90=0, and once with channels_last
# tensors), ResNet-50 and MobileNetV2 training steps and inference (`fastconv bench --model`,
# float16 channels_last, native vs fastconv.torch.replace_modules) and
# compute-sanitizer memcheck and racecheck over one small call of every kernel. The full log
# goes to $OUT/device.log (default ./device-out/), benchmark JSON next to it; a summary table
# is printed last. Exit code: the number of failed stages.
set -uo pipefail
OUT="${OUT:-$PWD/device-out}"
mkdir -p "$OUT"
BUDGET="${1:-420}"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
# jax with its CUDA plugin: no process takes most of the GPU's memory up front (XLA's default)
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export PATH="$PATH:/usr/local/cuda/bin:/usr/local/cuda/compute-sanitizer"
LOG="$OUT/device.log"
: >"$LOG"
SUMMARY=()
FAILED=0

# stage NAME LIMIT COMMAND...: run with min(LIMIT, time left) seconds, output to the log.
stage() {
  local name=$1 limit=$2 left start rc
  shift 2
  if [ -n "${STAGES:-}" ] && [[ " $STAGES " != *" $name "* ]]; then return; fi
  left=$((BUDGET - SECONDS))
  if [ "$left" -lt 15 ]; then
    SUMMARY+=("$(printf '%-14s skipped (budget spent)' "$name")")
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  start=$SECONDS
  echo "== $(date +%T) $name (limit ${limit}s): $*" | tee -a "$LOG"
  timeout -k 5 "$limit" "$@" >>"$LOG" 2>&1
  rc=$?
  [ "$rc" -ne 0 ] && FAILED=$((FAILED + 1))
  SUMMARY+=("$(printf '%-14s rc=%-3s %4ss' "$name" "$rc" "$((SECONDS - start))")")
}

# CUTLASS's headers for the tensor-op path: FASTCONV_CUTLASS_DIR, the nvidia-cutlass package of
# $PY, or its wheel carried in .whl/ (`pip download --no-deps nvidia-cutlass==4.2.0.0 -d .whl`
# here; the device machine reaches no package index), unpacked once. With none of them the
# build goes on without the tensor-op path (every layer on the WMMA kernel) and says so in the
# log, rather than losing the whole device run at configure time.
build() {
  rm -f python/fastconv/_C.*.so python/fastconv/_cuda.*.so
  local cutlass="${FASTCONV_CUTLASS_DIR:-}" wheel mode=ON
  wheel=$(ls .whl/nvidia_cutlass-*.whl 2>/dev/null | head -n 1)
  if [ -z "$cutlass" ] && ! "$PY" -c "import importlib.util as u; assert u.find_spec('cutlass_library')" 2>/dev/null; then
    if [ -n "$wheel" ]; then
      "$PY" -m zipfile -e "$wheel" /tmp/cutlass-wheel || return 1
      cutlass=/tmp/cutlass-wheel/cutlass_library/source/include
    else
      echo "device_check: no CUTLASS headers (FASTCONV_CUTLASS_DIR, nvidia-cutlass, .whl/): building without the tensor-op path"
      mode=AUTO
    fi
  fi
  FASTCONV_CUDA_ARCHITECTURES="${FASTCONV_CUDA_ARCHITECTURES:-90-real}" cmake -S . -B build/gpu \
    -G Ninja -DFASTCONV_CUDA=ON -DFASTCONV_CUTLASS="${FASTCONV_CUTLASS:-$mode}" -DFASTCONV_CUTLASS_DIR="$cutlass" \
    -DPython_EXECUTABLE="$(command -v "$PY")" \
    -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" || return 1
  ninja -C build/gpu -k 0 || return 1
  cp build/gpu/_C.*.so build/gpu/_cuda.*.so python/fastconv/
}

export -f build
export PY
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
stage machine 30 sh -c 'nvidia-smi; nvcc --version | tail -2; command -v compute-sanitizer; '"$PY"' -c "import torch; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), torch.cuda.get_device_name())"'
stage build 180 bash -c build
stage info 20 "$PY" -m fastconv info
stage pytest 120 "$PY" -m pytest -q -p no:cacheprovider -m "slow or not slow" --maxfail=20 \
  tests/test_cuda.py
# On an H100 / H200 the float16 / bfloat16 layers the Hopper core covers run its sm_90a kernels
# in the stage above; the sm_80 tensor-op kernels' tests once more with that core off.
stage pytest-sm80 60 env FASTCONV_CUDA_SM90=0 "$PY" -m pytest -q -p no:cacheprovider \
  -m "slow or not slow" --maxfail=20 tests/test_cuda.py -k "tensor_op or channels_last or resnet"
stage random 60 "$PY" cuda/device_checks.py random 200
stage suite 45 "$PY" cuda/device_checks.py suite
stage graph 40 "$PY" cuda/device_checks.py graph
# Under the sanitizers every tensor is its own cudaMalloc, so an access past its end is seen.
sanitize() {
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool "$1" --error-exitcode 9 \
    "$PY" cuda/device_checks.py small
}
export -f sanitize
# bench DTYPE [SUFFIX [OPTIONS]]: the reference suite against cuDNN into
# bench-DTYPE[SUFFIX].json
bench() {
  "$PY" -m fastconv bench --device cuda --suite reference --dtype "$1" \
    --passes forward,backward_data,backward_weight --min-time 0.02 --repeats 5 \
    --layer-budget 0.4 --json "$OUT/bench-$1${2:-}.json" "${@:3}"
}
export -f bench
export OUT
stage memcheck 60 bash -c "sanitize memcheck"
stage bench-float16 50 bash -c "bench float16"
# the same with the Hopper core off: its gain over the sm_80 kernels on this GPU
stage bench-f16-sm80 50 env FASTCONV_CUDA_SM90=0 bash -c "bench float16 -sm80"
stage racecheck 60 bash -c "sanitize racecheck"
stage overhead 20 "$PY" cuda/device_checks.py overhead
stage bench-bfloat16 50 bash -c "bench bfloat16"
# channels_last tensors for both (cuDNN's fastest float16 layout; fastconv's tensor-op path
# then reads and writes them in place, no layout moves)
stage bench-f16-cl 50 bash -c "bench float16 -channels-last --memory-format channels_last"
# whole networks, float16 channels_last (the usual GPU training setup), native vs replaced
models() {
  for m in resnet50 mobilenet_v2; do
    "$PY" -m fastconv bench --model "$m" --device cuda --dtype float16 \
      --memory-format channels_last --repeats 5 --json "$OUT/model-$m-f16-cl.json" || return 1
  done
}
export -f models
stage models 90 bash -c models
stage bench-float32 50 bash -c "bench float32"
# Last, what the GPU issues do not hang on: fastconv.jax on the GPU, and the CPU path on this host.
stage jax 90 "$PY" -m pytest -q -p no:cacheprovider -rs -m "slow or not slow" \
  tests/jax_adapter/test_jax_cuda.py -k "not emulated"
# The CPU path at this machine's ISA and thread count (AVX-512 on the H100/H200 hosts): every
# algorithm (a crash shows its C++ backtrace: cuda-gdb also debugs host code), then the CPU tests.
stage cpu 60 cuda-gdb -q -batch -iex "set auto-solib-add off" -ex run -ex "sharedlibrary _C" \
  -ex bt --args "$PY" cuda/device_checks.py cpu
stage cputests 90 env JAX_PLATFORMS=cpu "$PY" -m pytest -q -p no:cacheprovider -n 8 --maxfail=30 tests \
  --ignore=tests/torch_adapter --ignore=tests/test_cuda.py -k "not test_version"

{
  echo "== summary (budget ${BUDGET}s, used ${SECONDS}s)"
  printf '%s\n' "${SUMMARY[@]}"
  grep -E "^(FAIL|SKIPPED|random:|suite:|graph:|overhead:|small:)|ERROR SUMMARY|passed|failed" "$LOG" |
    cut -c1-300 | tail -n 60
} | tee -a "$LOG"
exit "$FAILED"
