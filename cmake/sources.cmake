# Source lists per component and the per-file ISA flags (no native-arch tuning flags: builds
# must run on any x86-64 / other CPU; the kernel table picks the ISA at run time).
set(FASTCONV_CORE_SOURCES
  csrc/common/geometry.cc
  csrc/common/problem.cc
  csrc/common/types.cc
  csrc/common/thread_pool.cc
  csrc/common/tuning.cc
  csrc/isa/cpu_features.cc
  csrc/ref/conv_ref.cc
  csrc/ref/pool_ref.cc
  csrc/algo/box_weight.cc
  csrc/algo/channels_last_weight.cc
  csrc/algo/conv_panels.cc
  csrc/algo/panel_runs.cc
  csrc/algo/wide_phases.cc
  csrc/algo/phase_bands.cc
  csrc/algo/forward_phases.cc
  csrc/algo/split_gemm.cc
  csrc/algo/im2col.cc
  csrc/algo/column_backward_data.cc
  csrc/algo/batch_fold.cc
  csrc/algo/implicit_gemm.cc
  csrc/algo/phase_backward_data.cc
  csrc/algo/winograd.cc
  csrc/algo/winograd_phases.cc
  csrc/algo/winograd_plan.cc
  csrc/algo/winograd_depth.cc
  csrc/algo/winograd_stride2.cc
  csrc/algo/winograd_line.cc
  csrc/algo/winograd_axis.cc
  csrc/algo/winograd_rows.cc
  csrc/algo/dilation_phases.cc
  csrc/algo/winograd_tiles.cc
  csrc/algo/winograd_schedule.cc
  csrc/algo/fft_conv.cc
  csrc/algo/fft_layout.cc
  csrc/algo/fft_tiles.cc
  csrc/algo/fft_weight_gradient.cc
  csrc/algo/depthwise_channels_last.cc
  csrc/algo/direct.cc
  csrc/algo/direct_rows.cc
  csrc/algo/direct_rows_weight.cc
  csrc/algo/direct_taps.cc
  csrc/algo/batch_taps.cc
  csrc/fft/fft.cc
  csrc/ops/conv.cc
  csrc/ops/pool.cc
  csrc/common/tiled_problem.cc
  csrc/ref/tiled_conv_ref.cc
  csrc/algo/tiled_gemm.cc
  csrc/algo/separable_conv.cc
  csrc/ops/tiled_conv.cc
  csrc/algo/pool.cc
  csrc/algo/pool_rows.cc
  csrc/common/resample_problem.cc
  csrc/ref/resample_ref.cc
  csrc/algo/resample.cc
  csrc/algo/stochastic_pool.cc
  csrc/ops/resample.cc
  csrc/gemm/cache_sizes.cc
  csrc/gemm/gemm.cc
  csrc/gemm/gemm_batched.cc
  csrc/gemm/kernel_table.cc
  csrc/gemm/peak_probe.cc
  csrc/ukernels/gemm/f32_gemm_4x8_scalar.cc
  csrc/ukernels/gemm/f64_gemm_4x4_scalar.cc
  csrc/ukernels/peak/fma_peak_scalar.cc
  csrc/ukernels/depthwise/dw_scalar.cc
  csrc/ukernels/separable/sep_scalar.cc
  csrc/ukernels/depthwise/dw_table.cc
  csrc/ukernels/rows/rows_scalar.cc
  csrc/ukernels/rows/rows_table.cc
  csrc/ukernels/fft/fft_ukernels_scalar.cc
  csrc/ukernels/winograd/winograd_transforms_scalar.cc
  csrc/ukernels/winograd/stride2_scalar.cc
  csrc/ukernels/winograd/stride2_table.cc
  csrc/ukernels/winograd/line_scalar.cc
  csrc/ukernels/winograd/line_table.cc
  csrc/ukernels/pool/pool_scalar.cc
  csrc/ukernels/pool/pool_table.cc
  csrc/ukernels/transpose/transpose_scalar.cc
  csrc/ukernels/panel/panel_scalar.cc
  csrc/ukernels/panel/panel_table.cc
  csrc/ukernels/transpose/transpose_table.cc
  csrc/ukernels/combine/combine_scalar.cc
  csrc/ukernels/combine/combine_table.cc
)

# Files compiled for one ISA level each; added by later kernels (ukernels/<family>/*_avx2.cc ...).
set(FASTCONV_AVX2_SOURCES
  csrc/ukernels/gemm/f32_gemm_6x16_avx2.cc
  csrc/ukernels/gemm/f64_gemm_6x8_avx2.cc
  csrc/ukernels/peak/fma_peak_avx2.cc
  csrc/ukernels/depthwise/dw_avx2.cc
  csrc/ukernels/rows/rows_avx2.cc
  csrc/ukernels/separable/sep_avx2.cc
  csrc/ukernels/fft/fft_ukernels_avx2.cc
  csrc/ukernels/winograd/winograd_transforms_avx2.cc
  csrc/ukernels/winograd/stride2_avx2.cc
  csrc/ukernels/winograd/line_avx2.cc
  csrc/ukernels/pool/pool_avx2.cc
  csrc/ukernels/transpose/transpose_avx2.cc
  csrc/ukernels/combine/combine_avx2.cc
  csrc/ukernels/panel/panel_avx2.cc
)
set(FASTCONV_AVX512_SOURCES
  csrc/ukernels/gemm/f32_gemm_12x32_avx512.cc
  csrc/ukernels/gemm/f64_gemm_12x16_avx512.cc
  csrc/ukernels/peak/fma_peak_avx512.cc
  csrc/ukernels/depthwise/dw_avx512.cc
  csrc/ukernels/rows/rows_avx512.cc
  csrc/ukernels/separable/sep_avx512.cc
  csrc/ukernels/fft/fft_ukernels_avx512.cc
  csrc/ukernels/winograd/winograd_transforms_avx512.cc
  csrc/ukernels/winograd/stride2_avx512.cc
  csrc/ukernels/winograd/line_avx512.cc
  csrc/ukernels/pool/pool_avx512.cc
  csrc/ukernels/transpose/transpose_avx512.cc
  csrc/ukernels/combine/combine_avx512.cc
  csrc/ukernels/panel/panel_avx512.cc
)

if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  set(FASTCONV_WARNINGS -Wall -Wextra -Wno-unused-parameter)
  set(FASTCONV_AVX2_FLAGS -mavx2 -mfma -mf16c)
  set(FASTCONV_AVX512_FLAGS -mavx512f -mavx512dq -mavx512bw -mavx512vl -mfma)
elseif(MSVC)
  set(FASTCONV_WARNINGS /W3)
  set(FASTCONV_AVX2_FLAGS /arch:AVX2)
  set(FASTCONV_AVX512_FLAGS /arch:AVX512)
endif()

function(fastconv_apply_isa_flags)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64|i.86")
    target_sources(fastconv_core PRIVATE ${FASTCONV_AVX2_SOURCES})
    if(FASTCONV_AVX2_SOURCES)
      set_source_files_properties(${FASTCONV_AVX2_SOURCES} PROPERTIES COMPILE_OPTIONS "${FASTCONV_AVX2_FLAGS}")
    endif()
    # FASTCONV_AVX512=OFF: no avx512 micro-kernels (FASTCONV_BY_ISA names the avx2 entries in
    # their place and active_isa() stops at avx2): a shorter build for machines without AVX-512
    if(NOT FASTCONV_AVX512)
      target_compile_definitions(fastconv_core PUBLIC FASTCONV_NO_AVX512=1)
      message(STATUS "fastconv: avx512 micro-kernels not built (FASTCONV_AVX512=OFF)")
    elseif(FASTCONV_AVX512_SOURCES)
      target_sources(fastconv_core PRIVATE ${FASTCONV_AVX512_SOURCES})
      set_source_files_properties(${FASTCONV_AVX512_SOURCES} PROPERTIES COMPILE_OPTIONS "${FASTCONV_AVX512_FLAGS}")
    endif()
    target_compile_definitions(fastconv_core PUBLIC FASTCONV_X86=1)
  endif()
  # Per-file sanitizer trims, one pass over the sources:
  # - the Winograd transforms are thousands of unrolled constant-index operations per function:
  #   UBSan's checks there (float arithmetic, fixed offsets) make them take minutes to compile,
  #   so they keep ASan's memory checks only;
  # - ASan's use-after-scope checks poison and unpoison every local array at each scope's entry
  #   and exit: in the SIMD micro-kernels (ukernels/, pure functions over their arguments, no
  #   lambdas or references that outlive a scope) that is most of their compile time under ASan
  #   (winograd_transforms_avx2.cc 115 -> 62 s) and guards nothing their out-of-bounds checks
  #   miss;
  # - the Winograd transforms stay at -O1 whatever FASTCONV_SANITIZE_OPT says: at -O0 their
  #   always-inlined constant loops are kept whole and took 140-200 s each to compile (62 s at
  #   -O1), where the rest of the library compiles in a third of its -O1 time; so do the GEMM,
  #   panel, transpose and FFT micro-kernels, ~2 s more each to compile, where the tests' large
  #   products spent minutes in -O0 intrinsics (.ci/sanitize's subset 223 -> 146 s on the 2-core
  #   Zen-1 VM, with test_winograd's error test on the NumPy oracle);
  # - FASTCONV_SANITIZE_LEVELS: the micro-kernels of the levels not listed
  #   (ukernels/*/*_<level>.cc) are built without the sanitizers, for sanitized runs that never
  #   select those levels (.ci/sanitize: the scalar level, which only FASTCONV_ISA=scalar runs,
  #   was a fifth of the sanitized build's compile time; avx512 where the CPU has no AVX-512).
  if(FASTCONV_SANITIZE)
    foreach(_level IN LISTS FASTCONV_SANITIZE_LEVELS)
      if(NOT _level MATCHES "^(scalar|avx2|avx512)$")
        message(FATAL_ERROR "fastconv: FASTCONV_SANITIZE_LEVELS takes a CMake list of scalar, "
                            "avx2, avx512 (e.g. \"avx2;avx512\"), not '${_level}'")
      endif()
    endforeach()
    foreach(_src IN LISTS FASTCONV_CORE_SOURCES FASTCONV_AVX2_SOURCES FASTCONV_AVX512_SOURCES)
      if(FASTCONV_SANITIZE MATCHES "undefined" AND _src MATCHES "winograd_transforms_")
        set_property(SOURCE ${_src} APPEND PROPERTY COMPILE_OPTIONS -fno-sanitize=undefined)
      endif()
      if(_src MATCHES "winograd_transforms_|ukernels/(gemm|panel|transpose|fft)/")
        set_property(SOURCE ${_src} APPEND PROPERTY COMPILE_OPTIONS -O1)
      endif()
      if(FASTCONV_SANITIZE MATCHES "address" AND _src MATCHES "ukernels/")
        set_property(SOURCE ${_src} APPEND PROPERTY COMPILE_OPTIONS -fno-sanitize-address-use-after-scope)
      endif()
      if(_src MATCHES "ukernels/.*_(scalar|avx2|avx512)\\.cc$")
        if(NOT CMAKE_MATCH_1 IN_LIST FASTCONV_SANITIZE_LEVELS)
          set_property(SOURCE ${_src} APPEND PROPERTY COMPILE_OPTIONS -fno-sanitize=all)
        endif()
      endif()
    endforeach()
  endif()
endfunction()
