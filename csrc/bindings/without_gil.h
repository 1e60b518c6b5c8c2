// Runs a kernel with the GIL released, safely also while the interpreter shuts down.
//
// py::gil_scoped_release takes the GIL back in its destructor. A daemon thread whose kernel
// finishes after Py_Finalize began cannot have it: CPython ends such a thread inside
// PyEval_RestoreThread (pthread_exit, a forced unwind), and a forced unwind out of a destructor
// (noexcept) is std::terminate - the process aborted at exit ("terminate called without an
// active exception") whenever daemon threads were inside fastconv (tests/test_concurrency.py).
// Here the GIL is taken back from ordinary code: a thread that sees the interpreter finalizing
// parks (it holds no fastconv lock any more, and the process is about to exit), and one that
// loses the race to PyEval_RestoreThread unwinds through frames that allow it (pybind11's
// dispatcher rethrows abi::__forced_unwind).
#pragma once
#include <pybind11/pybind11.h>
#include <unistd.h>

#include <type_traits>
#include <utility>

namespace fastconv::bindings {

inline bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

// Takes the GIL back for `state` (from PyEval_SaveThread); never returns while the interpreter
// is finalizing.
inline void reacquire_gil(PyThreadState* state) {
  if (interpreter_finalizing()) {
    for (;;) pause();  // the process exits around this thread
  }
  PyEval_RestoreThread(state);
}

// f() with the GIL released; its result or exception is passed on with the GIL held again.
template <typename F>
auto without_gil(F&& f) -> decltype(f()) {
  using R = decltype(f());
  PyThreadState* state = PyEval_SaveThread();
  if constexpr (std::is_void_v<R>) {
    try {
      f();
    } catch (...) {
      reacquire_gil(state);
      throw;
    }
    reacquire_gil(state);
  } else {
    R result = [&] {
      try {
        return f();
      } catch (...) {
        reacquire_gil(state);
        throw;
      }
    }();
    reacquire_gil(state);
    return result;
  }
}

}  // namespace fastconv::bindings
