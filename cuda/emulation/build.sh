#!/bin/sh
# Builds fastconv_cuda_emulation (the CUDA kernels compiled for the host, see host_emulation.h)
# into $1 (default: build/cuda-emulation). Needs g++ >= 11 (C++20), pybind11 and the CUDA
# headers (cuda_runtime.h, cuda_fp16.h); no GPU and no nvcc.
set -e
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build/cuda-emulation}
cuda_inc=${CUDA_INCLUDE:-/usr/local/cuda/include}
mkdir -p "$out"
python=${PYTHON:-python}
flags="-std=c++20 -O1 -fPIC -pthread -DFASTCONV_HOST_EMULATION -Wno-attributes -I$root/cuda -I$root/csrc/include -I$root/csrc -I$cuda_inc $($python -m pybind11 --includes)"
pids=""
for src in implicit_gemm tensor_op_conv depthwise pool; do
  c++ $flags -include "$root/cuda/emulation/host_emulation.h" -x c++ -c "$root/cuda/$src.cu" -o "$out/$src.o" &
  pids="$pids $!"
done
# the tensor-op path's core: a reference kernel in place of CUTLASS's (cuda/tensor_op_cutlass.cu)
c++ $flags -include "$root/cuda/emulation/host_emulation.h" -c "$root/cuda/emulation/nhwc_core_reference.cc" -o "$out/nhwc_core.o" &
pids="$pids $!"
c++ $flags -c "$root/csrc/common/geometry.cc" -o "$out/geometry.o" &
pids="$pids $!"
c++ $flags -c "$root/csrc/common/types.cc" -o "$out/types.o" &
pids="$pids $!"
c++ $flags -include "$root/cuda/emulation/host_emulation.h" -c "$root/cuda/emulation/emulation_module.cc" -o "$out/module.o" &
pids="$pids $!"
c++ $flags -include "$root/cuda/emulation/host_emulation.h" -x c++ -c "$root/cuda/device_query.cu" -o "$out/device_query.o" &
pids="$pids $!"
# fastconv.jax's CUDA handlers (cuda/jax_ffi.cc) over the emulated kernels, when jax is
# installed: tests register them as CPU targets and run fastconv.jax through them.
jax_objects=""
jax_inc=$($python -c "import jax; print(jax.ffi.include_dir())" 2>/dev/null || true)
if [ -n "$jax_inc" ] && [ -f "$jax_inc/xla/ffi/api/ffi.h" ]; then
  jflags="$flags -DFASTCONV_WITH_JAX_FFI -DFASTCONV_JAXLIB_VERSION=\"$($python -c "import jaxlib; print(jaxlib.__version__)")\" -isystem $jax_inc"
  c++ $jflags -include "$root/cuda/emulation/host_emulation.h" -c "$root/cuda/jax_ffi.cc" -o "$out/jax_ffi.o" &
  pids="$pids $!"
  c++ $jflags -c "$root/csrc/bindings/jax_ffi_calls.cc" -o "$out/jax_ffi_calls.o" &
  pids="$pids $!"
  c++ $flags -c "$root/csrc/common/problem.cc" -o "$out/problem.o" &
  pids="$pids $!"
  jax_objects="$out/jax_ffi.o $out/jax_ffi_calls.o $out/problem.o"
  flags="$flags -DFASTCONV_WITH_JAX_FFI"
fi
# The real glue (cuda/module.cc) over the emulated kernels: an emulated fastconv._cuda whose
# "device pointers" are host pointers, for end-to-end tests of fastconv/backends/cuda.py.
c++ $flags -include "$root/cuda/emulation/host_emulation.h" -c "$root/cuda/module.cc" -o "$out/glue.o" &
pids="$pids $!"
for p in $pids; do wait $p; done
suffix=$($python -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
c++ -shared -pthread -o "$out/fastconv_cuda_emulation$suffix" "$out"/implicit_gemm.o "$out"/tensor_op_conv.o "$out"/nhwc_core.o "$out"/depthwise.o "$out"/pool.o "$out"/geometry.o "$out"/types.o "$out"/module.o
mkdir -p "$out/glue"
c++ -shared -pthread -o "$out/glue/_cuda$suffix" "$out"/implicit_gemm.o "$out"/tensor_op_conv.o "$out"/nhwc_core.o "$out"/depthwise.o "$out"/pool.o "$out"/geometry.o "$out"/types.o "$out"/device_query.o "$out"/glue.o $jax_objects
echo "$out"
