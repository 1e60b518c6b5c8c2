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

// After every <<<...>>>: a bad launch configuration is reported here, not at the next sync.
inline void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

// Sets the current device for a scope and restores the caller's afterwards.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check_cuda(cudaGetDevice(&previous_), "cudaGetDevice");
    if (device != previous_) check_cuda(cudaSetDevice(device), "cudaSetDevice");
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

// Stream-ordered scratch memory (cudaMallocAsync); freed on the same stream when the scope ends.
class StreamBuffer {
 public:
  StreamBuffer(size_t bytes, cudaStream_t stream) : stream_(stream) {
    if (bytes == 0) return;
    const cudaError_t st = cudaMallocAsync(&ptr_, bytes, stream);
    if (st != cudaSuccess) {
      cudaGetLastError();
      ptr_ = nullptr;
    }
  }
  ~StreamBuffer() {
    if (ptr_) cudaFreeAsync(ptr_, stream_);
  }
  StreamBuffer(const StreamBuffer&) = delete;
  StreamBuffer& operator=(const StreamBuffer&) = delete;
  void* get() const { return ptr_; }
  bool ok() const { return ptr_ != nullptr; }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_;
};

}  // namespace fastconv::cuda
