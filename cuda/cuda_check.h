// CUDA error checks for fastconv._cuda: every runtime call and launch goes through these, and a
// failure becomes a C++ exception that the bindings turn into a Python exception.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace fastconv::cuda {

// A CUDA runtime failure (Python RuntimeError). Sticky errors (a kernel fault) poison the
// context; the message says so, since only a process restart recovers from them.
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void throw_cuda_error(cudaError_t st, const char* what) {
  // Reading the error clears it unless it is sticky; a sticky one shows up again here.
  cudaGetLastError();
  const bool sticky = cudaPeekAtLastError() != cudaSuccess;
  std::string msg = std::string("fastconv CUDA error in ") + what + ": " +
                    cudaGetErrorName(st) + " (" + cudaGetErrorString(st) + ")";
  if (sticky) msg += "; the CUDA context is unusable now, restart the process";
  throw CudaError(msg);
}

inline void check_cuda(cudaError_t st, const char* what) {
  if (st != cudaSuccess) throw_cuda_error(st, what);
}

// After every <<<...>>>: a bad launch configuration is reported here, not at the next sync. The
// error read here is this call's own: check_pending_errors ran when the call began.
inline void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

// When a call begins, before anything is launched: an error already pending in this thread's
// CUDA state is not fastconv's. A sticky one (a fault of earlier work, of any library) leaves the
// context unusable, so the call fails at once and says whose it was. A non-sticky one (a failed
// launch or runtime call whose caller never read it) is cleared, so that check_launch reports
// only what fastconv's own launches did instead of blaming them for it.
inline void check_pending_errors(const char* entry) {
  const cudaError_t pending = cudaPeekAtLastError();
  if (pending == cudaSuccess) return;
  cudaGetLastError();                                // clears it unless it is sticky
  if (cudaPeekAtLastError() == cudaSuccess) return;  // someone else's, and recoverable
  throw CudaError(std::string("fastconv CUDA error before ") + entry +
                  " launched anything: the CUDA context was already broken by earlier work "
                  "(not a fastconv kernel): " + cudaGetErrorName(pending) + " (" +
                  cudaGetErrorString(pending) + "); restart the process");
}

// Begins a call of the module: sets the current device for the scope (the caller's comes back
// afterwards) and runs check_pending_errors for `entry`.
class DeviceGuard {
 public:
  DeviceGuard(int device, const char* entry) {
    check_cuda(cudaGetDevice(&previous_), "cudaGetDevice");
    if (device != previous_) check_cuda(cudaSetDevice(device), "cudaSetDevice");
    check_pending_errors(entry);
  }
  ~DeviceGuard() {
    int now = -1;
    if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace fastconv::cuda
