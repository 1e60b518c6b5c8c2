// Error kinds raised by the C++ layer; the bindings map each to one Python exception.
#pragma once
#include <stdexcept>
#include <string>

namespace fastconv {

// The caller passed a bad value, shape or size (Python ValueError). Message names the argument.
class InvalidArgument : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The caller passed the wrong kind or dtype of array (Python TypeError).
class InvalidType : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A valid request the forced algorithm cannot serve (Python NotImplementedError).
class Unsupported : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Memory a call needs (its workspace) cannot be had (Python MemoryError), raised before any work.
// The message names the size.
class OutOfMemory : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace fastconv
