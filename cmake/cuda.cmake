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
  cuda/tensor_op_conv.cu
  cuda/tensor_op_cutlass.cu
  cuda/depthwise.cu
  cuda/pool.cu
  csrc/common/geometry.cc
  csrc/common/types.cc)
target_include_directories(_cuda PRIVATE cuda csrc/include csrc)
string(REPLACE ";" "," _fastconv_cuda_archs "${CMAKE_CUDA_ARCHITECTURES}")  # no ';' in a -D
target_compile_definitions(_cuda PRIVATE FASTCONV_CUDA_ARCHITECTURES="${_fastconv_cuda_archs}")
# The tensor-op path's core (cuda/tensor_op_cutlass.cu) is CUTLASS's header-only implicit-GEMM
# convolution: headers from FASTCONV_CUTLASS_DIR or the nvidia-cutlass package of the build's
# Python (cutlass_library/source/include; an isolated wheel build lacks it: pass the directory,
# as .ci/run does). Without them every layer runs the WMMA kernel (FASTCONV_CUTLASS=ON: an error).
if(NOT FASTCONV_CUTLASS STREQUAL "OFF" AND NOT FASTCONV_CUTLASS_DIR)
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c
            "import importlib.util, os; s = importlib.util.find_spec('cutlass_library'); print(os.path.join(list(s.submodule_search_locations)[0], 'source', 'include'))"
    OUTPUT_VARIABLE _fastconv_cutlass_include OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _fastconv_cutlass_rc ERROR_QUIET)
  if(_fastconv_cutlass_rc EQUAL 0)
    set(FASTCONV_CUTLASS_DIR "${_fastconv_cutlass_include}")
  endif()
endif()
if(FASTCONV_CUTLASS STREQUAL "OFF")
  message(STATUS "fastconv: tensor-op (CUTLASS) path disabled (FASTCONV_CUTLASS=OFF)")
elseif(FASTCONV_CUTLASS_DIR AND EXISTS "${FASTCONV_CUTLASS_DIR}/cutlass/conv/device/implicit_gemm_convolution.h")
  target_include_directories(_cuda SYSTEM PRIVATE "${FASTCONV_CUTLASS_DIR}")
  # its 30 kernels take most of the module's compile time: nvcc compiles the architectures of
  # this one file side by side
  set_source_files_properties(cuda/tensor_op_cutlass.cu PROPERTIES COMPILE_OPTIONS "--threads=0")
  target_compile_definitions(_cuda PRIVATE FASTCONV_WITH_CUTLASS)
  message(STATUS "fastconv: tensor-op path on CUTLASS's headers in ${FASTCONV_CUTLASS_DIR}")
  # The Hopper core (cuda/tensor_op_sm90*.cu: CUTLASS 3's wgmma / TMA convolution kernels) where
  # the architectures include sm_90 (FASTCONV_CUTLASS_SM90=AUTO; ON: always where CUTLASS's
  # headers were found, as CI does to compile-check it; OFF: never) and nvcc is 12.0 or newer: compiled for sm_90a alone (wgmma
  # exists only on that target, whatever CMAKE_CUDA_ARCHITECTURES says), as an object library
  # linked into the module; the two dtypes' files compile side by side. It needs CUTLASS's
  # util headers too (tools/util/include beside include/ in the nvidia-cutlass package).
  set(_fastconv_sm90 OFF)
  foreach(_arch IN LISTS CMAKE_CUDA_ARCHITECTURES)
    if(_arch MATCHES "^90")
      set(_fastconv_sm90 ON)
    endif()
  endforeach()
  if(FASTCONV_CUTLASS_SM90 STREQUAL "ON")
    set(_fastconv_sm90 ON)
  elseif(FASTCONV_CUTLASS_SM90 STREQUAL "OFF")
    set(_fastconv_sm90 OFF)
  endif()
  set(_fastconv_cutlass_util "${FASTCONV_CUTLASS_DIR}/../tools/util/include")
  if(_fastconv_sm90 AND NOT (CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.0
     AND EXISTS "${_fastconv_cutlass_util}/cutlass/util/packed_stride.hpp")
     AND FASTCONV_CUTLASS_SM90 STREQUAL "ON")
    message(FATAL_ERROR "fastconv: FASTCONV_CUTLASS_SM90=ON needs nvcc 12.0+ (found "
                        "${CMAKE_CUDA_COMPILER_VERSION}) and CUTLASS's util headers in "
                        "${_fastconv_cutlass_util}")
  endif()
  if(_fastconv_sm90 AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.0
     AND EXISTS "${_fastconv_cutlass_util}/cutlass/util/packed_stride.hpp")
    add_library(fastconv_cuda_sm90 OBJECT cuda/tensor_op_sm90_f16.cu cuda/tensor_op_sm90_bf16.cu)
    set_target_properties(fastconv_cuda_sm90 PROPERTIES CUDA_ARCHITECTURES OFF
                                                        POSITION_INDEPENDENT_CODE ON
                                                        CUDA_STANDARD 17
                                                        CUDA_VISIBILITY_PRESET hidden
                                                        VISIBILITY_INLINES_HIDDEN ON)
    target_compile_options(fastconv_cuda_sm90 PRIVATE
                           "-gencode=arch=compute_90a,code=sm_90a" "--expt-relaxed-constexpr")
    target_include_directories(fastconv_cuda_sm90 PRIVATE cuda csrc/include csrc)
    target_include_directories(fastconv_cuda_sm90 SYSTEM PRIVATE "${FASTCONV_CUTLASS_DIR}"
                                                                 "${_fastconv_cutlass_util}")
    target_compile_definitions(fastconv_cuda_sm90 PRIVATE FASTCONV_WITH_CUTLASS)
    target_sources(_cuda PRIVATE $<TARGET_OBJECTS:fastconv_cuda_sm90>)
    target_compile_definitions(_cuda PRIVATE FASTCONV_WITH_CUTLASS_SM90)
    message(STATUS "fastconv: Hopper core (sm_90a wgmma / TMA kernels) in the tensor-op path")
  elseif(_fastconv_sm90)
    message(STATUS "fastconv: no Hopper core (needs nvcc 12.0+ and CUTLASS's util headers in "
                   "${_fastconv_cutlass_util}); sm_90 runs the sm_80 tensor-op kernels")
  endif()
elseif(FASTCONV_CUTLASS STREQUAL "ON")
  message(FATAL_ERROR "fastconv: FASTCONV_CUTLASS=ON but CUTLASS's headers were not found: "
                      "`pip install --no-deps nvidia-cutlass` in ${Python_EXECUTABLE}, set "
                      "FASTCONV_CUTLASS_DIR, or use FASTCONV_CUTLASS=AUTO/OFF.")
else()
  message(STATUS "fastconv: CUTLASS's headers not found; the CUDA module runs every layer on "
                 "its WMMA kernel (no tensor-op path)")
endif()
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
