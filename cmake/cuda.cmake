# FASTCONV_CUDA=AUTO|ON|OFF: build fastconv._cuda only when a CUDA compiler is available.
if(FASTCONV_CUDA STREQUAL "OFF")
  message(STATUS "fastconv: CUDA module disabled (FASTCONV_CUDA=OFF)")
  return()
endif()
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  if(FASTCONV_CUDA STREQUAL "ON")
    message(FATAL_ERROR "fastconv: FASTCONV_CUDA=ON but no CUDA compiler (nvcc) was found. "
                        "Install the CUDA toolkit, set CUDACXX, or use FASTCONV_CUDA=AUTO/OFF.")
  endif()
  message(STATUS "fastconv: no CUDA compiler found; building the CPU module only")
  return()
endif()
if(DEFINED ENV{FASTCONV_CUDA_ARCHITECTURES})
  set(CMAKE_CUDA_ARCHITECTURES "$ENV{FASTCONV_CUDA_ARCHITECTURES}")
elseif(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  # SASS for Ampere and Hopper, PTX for newer GPUs.
  set(CMAKE_CUDA_ARCHITECTURES "80-real;90-real;90-virtual")
endif()
# The kernels use cp.async and bfloat16/TF32 tensor cores: sm_80 (Ampere) or newer only.
foreach(_arch IN LISTS CMAKE_CUDA_ARCHITECTURES)
  string(REGEX MATCH "^[0-9]+" _arch_number "${_arch}")
  if(_arch_number AND _arch_number LESS 80)
    message(FATAL_ERROR "fastconv: CUDA architecture ${_arch} is not supported; the GPU kernels "
                        "need sm_80 or newer (set FASTCONV_CUDA_ARCHITECTURES, e.g. 80-real;90-real)")
  endif()
endforeach()
enable_language(CUDA)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_RUNTIME_LIBRARY Static)
# Kernels in cuda/*.cu, pybind11 glue in cuda/module.cc; the geometry (shape validation and
# output sizes) and the enums' spellings are the CPU module's own csrc/common/geometry.cc and
# types.cc, compiled in once more.
pybind11_add_module(_cuda MODULE
  cuda/module.cc
  cuda/device_query.cu
  cuda/implicit_gemm.cu
  cuda/depthwise.cu
  cuda/pool.cu
  csrc/common/geometry.cc
  csrc/common/types.cc)
target_include_directories(_cuda PRIVATE cuda csrc/include csrc)
string(REPLACE ";" "," _fastconv_cuda_archs "${CMAKE_CUDA_ARCHITECTURES}")  # no ';' in a -D
target_compile_definitions(_cuda PRIVATE FASTCONV_CUDA_ARCHITECTURES="${_fastconv_cuda_archs}")
find_package(CUDAToolkit REQUIRED)
target_link_libraries(_cuda PRIVATE CUDA::cudart_static)
# The CUDA XLA FFI handlers of fastconv.jax (cuda/jax_ffi.cc) when jaxlib's headers were found
# (FASTCONV_JAX, cmake/jax.cmake); they decode calls with the CPU handlers' decoder and build
# problems with csrc/common/problem.cc.
if(FASTCONV_JAX_FOUND)
  fastconv_add_jax_ffi(_cuda cuda/jax_ffi.cc)
  target_sources(_cuda PRIVATE csrc/common/problem.cc)
  set_source_files_properties(cuda/jax_ffi.cc PROPERTIES COMPILE_OPTIONS "${FASTCONV_WARNINGS}")
  message(STATUS "fastconv: CUDA XLA FFI handlers in fastconv._cuda")
endif()
install(TARGETS _cuda DESTINATION fastconv)
message(STATUS "fastconv: building the CUDA module for architectures ${CMAKE_CUDA_ARCHITECTURES}")
