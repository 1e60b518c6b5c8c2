# Precompiled headers (CMake >= 3.16; CMAKE_DISABLE_PRECOMPILE_HEADERS=ON turns them off):
# - fastconv_core: the standard headers most of its files include, for every file outside
#   csrc/ukernels/ (those have their own -m / sanitizer options per file, which a GCC PCH must
#   match, so they parse their headers themselves). Parsing them was ~0.6 of each generic
#   file's 1.5-4 s at -O3, more of it at the sanitized build's -O0.
# - _C: pybind11's headers (~3 s to parse per bindings file), for the files that use them.
# Included by CMakeLists.txt after cmake/jax.cmake (which adds _C's XLA FFI sources).
target_precompile_headers(fastconv_core PRIVATE
  <algorithm> <array> <atomic> <cmath> <cstdint> <cstring> <functional> <limits> <memory>
  <mutex> <string> <utility> <vector>)
get_target_property(_fastconv_core_sources fastconv_core SOURCES)
foreach(_src IN LISTS _fastconv_core_sources)
  if(_src MATCHES "csrc/ukernels/")
    set_source_files_properties(${_src} PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
  endif()
endforeach()

target_precompile_headers(_C PRIVATE <pybind11/pybind11.h> <pybind11/numpy.h> <pybind11/stl.h>)
get_target_property(_fastconv_c_sources _C SOURCES)
foreach(_src IN LISTS _fastconv_c_sources)
  get_filename_component(_path "${_src}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  file(STRINGS "${_path}" _uses_pybind11 REGEX "#include <pybind11/")
  if(NOT _uses_pybind11)
    set_source_files_properties(${_src} PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
  endif()
endforeach()
