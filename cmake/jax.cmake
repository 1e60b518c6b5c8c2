# FASTCONV_JAX=AUTO|ON|OFF: compile the XLA FFI handlers (fastconv.jax) into fastconv._C when
# jaxlib's FFI headers are found (and the CUDA ones into fastconv._cuda when that is built:
# cmake/cuda.cmake reads FASTCONV_JAX_FOUND). They go into _C, not a second module, because a second module
# would link its own copy of fastconv_core: its own thread pool, thread count and tuning state.
# The headers come from FASTCONV_JAX_INCLUDE_DIR, or from the configured Python's jax
# (jax.ffi.include_dir()); an isolated wheel build has no jax, so CI passes the directory.
set(FASTCONV_JAX_FOUND OFF)
if(FASTCONV_JAX STREQUAL "OFF")
  message(STATUS "fastconv: XLA FFI handlers disabled (FASTCONV_JAX=OFF)")
  return()
endif()
if(NOT FASTCONV_JAX_INCLUDE_DIR)
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c "import jax; print(jax.ffi.include_dir())"
    OUTPUT_VARIABLE _fastconv_jax_include OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _fastconv_jax_rc ERROR_QUIET)
  if(_fastconv_jax_rc EQUAL 0)
    set(FASTCONV_JAX_INCLUDE_DIR "${_fastconv_jax_include}")
  endif()
endif()
if(NOT FASTCONV_JAX_INCLUDE_DIR OR NOT EXISTS "${FASTCONV_JAX_INCLUDE_DIR}/xla/ffi/api/ffi.h")
  if(FASTCONV_JAX STREQUAL "ON")
    message(FATAL_ERROR "fastconv: FASTCONV_JAX=ON but the XLA FFI headers (xla/ffi/api/ffi.h) "
                        "were not found: install jax/jaxlib in ${Python_EXECUTABLE}, set "
                        "FASTCONV_JAX_INCLUDE_DIR, or use FASTCONV_JAX=AUTO/OFF.")
  endif()
  message(STATUS "fastconv: no XLA FFI headers found; building without fastconv.jax handlers")
  return()
endif()
# The jaxlib version the headers belong to (jaxlib/version.py beside jaxlib/include): recorded
# in _C so that fastconv.jax can refuse a different jaxlib at import.
set(_fastconv_jaxlib_version "unknown")
if(EXISTS "${FASTCONV_JAX_INCLUDE_DIR}/../version.py")
  file(STRINGS "${FASTCONV_JAX_INCLUDE_DIR}/../version.py" _fastconv_jaxlib_line
       REGEX "^_version = ")
  string(REGEX MATCH "[0-9]+\\.[0-9]+\\.[0-9]+" _fastconv_jaxlib_version "${_fastconv_jaxlib_line}")
endif()
set(FASTCONV_JAX_FOUND ON)
# Adds the XLA FFI handlers to a module: the shared call decoder (csrc/bindings/jax_ffi_calls.cc)
# and the platform's handlers (`handlers`); used for _C here and for _cuda in cmake/cuda.cmake.
function(fastconv_add_jax_ffi target handlers)
  target_sources(${target} PRIVATE ${handlers} csrc/bindings/jax_ffi_calls.cc)
  target_include_directories(${target} SYSTEM PRIVATE "${FASTCONV_JAX_INCLUDE_DIR}")
  target_compile_definitions(${target} PRIVATE FASTCONV_WITH_JAX_FFI
                                         FASTCONV_JAXLIB_VERSION="${_fastconv_jaxlib_version}")
endfunction()
fastconv_add_jax_ffi(_C csrc/bindings/jax_ffi.cc)
message(STATUS "fastconv: XLA FFI handlers for jaxlib ${_fastconv_jaxlib_version} "
               "(${FASTCONV_JAX_INCLUDE_DIR})")
