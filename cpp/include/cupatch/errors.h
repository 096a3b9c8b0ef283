// SPDX-License-Identifier: BSD-3-Clause
// Error helpers: C++ code throws standard exceptions that the bindings map to Python ones
// (invalid_argument -> ValueError, out_of_range -> IndexError); CUDA failures throw
// CudaError, registered in Python as cupatch._core.CudaError (a RuntimeError).
#pragma once

#include <stdexcept>
#include <string>

namespace cupatch {

class CudaError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Throw std::invalid_argument with `message` unless `condition` holds.
inline void require(bool condition, const std::string& message) {
    if (!condition) throw std::invalid_argument(message);
}

// Throw std::out_of_range with `message` unless `condition` holds.
inline void require_index(bool condition, const std::string& message) {
    if (!condition) throw std::out_of_range(message);
}

}  // namespace cupatch
