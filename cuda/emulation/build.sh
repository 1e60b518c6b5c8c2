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
for src in implicit_gemm depthwise pool; do
  c++ $flags -include "$root/cuda/emulation/host_emulation.h" -x c++ -c "$root/cuda/$src.cu" -o "$out/$src.o" &
  pids="$pids $!"
done
c++ $flags -c "$root/csrc/common/geometry.cc" -o "$out/geometry.o" &
pids="$pids $!"
c++ $flags -c "$root/csrc/common/types.cc" -o "$out/types.o" &
pids="$pids $!"
c++ $flags -include "$root/cuda/emulation/host_emulation.h" -c "$root/cuda/emulation/emulation_module.cc" -o "$out/module.o" &
pids="$pids $!"
# The real glue (cuda/module.cc) over the emulated kernels: an emulated fastconv._cuda whose
# "device pointers" are host pointers, for end-to-end tests of fastconv/backends/cuda.py.
c++ $flags -include "$root/cuda/emulation/host_emulation.h" -c "$root/cuda/module.cc" -o "$out/glue.o" &
pids="$pids $!"
c++ $flags -include "$root/cuda/emulation/host_emulation.h" -x c++ -c "$root/cuda/device_query.cu" -o "$out/device_query.o" &
pids="$pids $!"
for p in $pids; do wait $p; done
suffix=$($python -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
c++ -shared -pthread -o "$out/fastconv_cuda_emulation$suffix" "$out"/implicit_gemm.o "$out"/depthwise.o "$out"/pool.o "$out"/geometry.o "$out"/types.o "$out"/module.o
mkdir -p "$out/glue"
c++ -shared -pthread -o "$out/glue/_cuda$suffix" "$out"/implicit_gemm.o "$out"/depthwise.o "$out"/pool.o "$out"/geometry.o "$out"/types.o "$out"/device_query.o "$out"/glue.o
echo "$out"
