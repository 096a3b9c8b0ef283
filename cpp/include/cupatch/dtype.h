// SPDX-License-Identifier: BSD-3-Clause
// Element types and the single runtime -> compile-time dtype dispatch.
//
// CUPATCH_FOR_EACH_DTYPE is the only list of supported element types: the DType enum, the
// names exported to Python (cupatch._core.DTYPES) and dispatch_dtype are generated from it.
// float16 and bfloat16 are stored as raw 16-bit words and converted with the bit-exact,
// round-to-nearest-even code below, identical on host and device.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cupatch/common.h"

namespace cupatch {

struct float16_t {
    std::uint16_t bits;
};
struct bfloat16_t {
    std::uint16_t bits;
};

// name (NumPy spelling), C++ storage type
#define CUPATCH_FOR_EACH_DTYPE(X) \
    X(uint8, std::uint8_t)        \
    X(uint16, std::uint16_t)      \
    X(int16, std::int16_t)        \
    X(int32, std::int32_t)        \
    X(float16, float16_t)         \
    X(float32, float)             \
    X(float64, double)            \
    X(bfloat16, bfloat16_t)

enum class DType : int {
#define CUPATCH_ENUM_ENTRY(name, type) name,
    CUPATCH_FOR_EACH_DTYPE(CUPATCH_ENUM_ENTRY)
#undef CUPATCH_ENUM_ENTRY
        count
};

// Python-visible name of each DType, in enum order.
inline const char* const* dtype_names() {
    static const char* const names[] = {
#define CUPATCH_NAME_ENTRY(name, type) #name,
        CUPATCH_FOR_EACH_DTYPE(CUPATCH_NAME_ENTRY)
#undef CUPATCH_NAME_ENTRY
    };
    return names;
}

inline DType dtype_from_code(int code) {
    if (code < 0 || code >= static_cast<int>(DType::count))
        throw std::invalid_argument("unknown dtype code " + std::to_string(code));
    return static_cast<DType>(code);
}

// Call f(T{}) with T the storage type of `dtype`.
template <class F>
decltype(auto) dispatch_dtype(DType dtype, F&& f) {
    switch (dtype) {
#define CUPATCH_CASE_ENTRY(name, type) \
    case DType::name:                  \
        return f(type{});
        CUPATCH_FOR_EACH_DTYPE(CUPATCH_CASE_ENTRY)
#undef CUPATCH_CASE_ENTRY
        default:
            break;
    }
    throw std::invalid_argument("unsupported dtype code " + std::to_string(static_cast<int>(dtype)));
}

// Output element types of gather (a floating subset of the list above).
template <class T>
struct is_output_type {
    static constexpr bool value = false;
};
template <>
struct is_output_type<float> {
    static constexpr bool value = true;
};
template <>
struct is_output_type<float16_t> {
    static constexpr bool value = true;
};
template <>
struct is_output_type<bfloat16_t> {
    static constexpr bool value = true;
};

inline bool is_output_dtype(DType dtype) {
    return dispatch_dtype(dtype, [](auto tag) { return is_output_type<decltype(tag)>::value; });
}

// Call f(T{}) for an output dtype; throws std::invalid_argument for any other dtype.
template <class F>
void dispatch_output_dtype(DType dtype, F&& f) {
    dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        if constexpr (is_output_type<T>::value) {
            f(tag);
        } else {
            throw std::invalid_argument(std::string("output dtype must be float32, float16 or bfloat16, got ") +
                                        dtype_names()[static_cast<int>(dtype)]);
        }
    });
}

// ---------------------------------------------------------------------------------------
// Bit-exact conversions (host and device)

CUPATCH_HD std::uint32_t float_bits(float value) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(value);
#else
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
#endif
}

CUPATCH_HD float bits_float(std::uint32_t bits) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(bits);
#else
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
#endif
}

// float32 -> IEEE binary16 bits, round to nearest even (same results as numpy's astype).
CUPATCH_HD std::uint16_t float_to_half_bits(float value) {
    const std::uint32_t f = float_bits(value);
    const std::uint32_t sign = (f >> 16) & 0x8000u;
    const std::uint32_t a = f & 0x7fffffffu;
    if (a >= 0x7f800000u) {  // inf, or NaN kept quiet with the top payload bits
        return static_cast<std::uint16_t>(sign | 0x7c00u | (a > 0x7f800000u ? 0x0200u | ((a >> 13) & 0x3ffu) : 0u));
    }
    if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to inf
    if (a >= 0x38800000u) {                                                    // normal half
        std::uint32_t r = a - 0x38000000u;                                     // rebias exponent 127 -> 15
        r += 0xfffu + ((r >> 13) & 1u);
        return static_cast<std::uint16_t>(sign | (r >> 13));
    }
    const std::uint32_t e = a >> 23;
    if (e < 102u) return static_cast<std::uint16_t>(sign);  // below half the smallest subnormal
    const std::uint32_t m = (a & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126u - e;  // 14..24
    std::uint32_t q = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1u);
    const std::uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) ++q;  // may carry into the smallest normal
    return static_cast<std::uint16_t>(sign | q);
}

// IEEE binary16 bits -> float32 (exact).
CUPATCH_HD float half_bits_to_float(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    std::uint32_t e = (h >> 10) & 0x1fu;
    std::uint32_t m = h & 0x3ffu;
    std::uint32_t bits;
    if (e == 0x1fu) {
        bits = sign | 0x7f800000u | (m << 13);
    } else if (e != 0u) {
        bits = sign | ((e + 112u) << 23) | (m << 13);
    } else if (m == 0u) {
        bits = sign;
    } else {  // subnormal: normalise
        e = 113u;
        while (!(m & 0x400u)) {
            m <<= 1;
            --e;
        }
        bits = sign | (e << 23) | ((m & 0x3ffu) << 13);
    }
    return bits_float(bits);
}

// float32 -> bfloat16 bits, round to nearest even (NaN stays a quiet NaN).
CUPATCH_HD std::uint16_t float_to_bfloat16_bits(float value) {
    const std::uint32_t f = float_bits(value);
    if ((f & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((f >> 16) | 0x40u);
    return static_cast<std::uint16_t>((f + 0x7fffu + ((f >> 16) & 1u)) >> 16);
}

CUPATCH_HD float bfloat16_bits_to_float(std::uint16_t h) { return bits_float(static_cast<std::uint32_t>(h) << 16); }

// Any storage type -> float32 (integers and float64 round to nearest even).
CUPATCH_HD float to_float(std::uint8_t v) { return static_cast<float>(v); }
CUPATCH_HD float to_float(std::uint16_t v) { return static_cast<float>(v); }
CUPATCH_HD float to_float(std::int16_t v) { return static_cast<float>(v); }
CUPATCH_HD float to_float(std::int32_t v) { return static_cast<float>(v); }
CUPATCH_HD float to_float(float v) { return v; }
CUPATCH_HD float to_float(double v) { return static_cast<float>(v); }
CUPATCH_HD float to_float(float16_t v) { return half_bits_to_float(v.bits); }
CUPATCH_HD float to_float(bfloat16_t v) { return bfloat16_bits_to_float(v.bits); }

// float32 -> output storage type.
CUPATCH_HD void from_float(float v, float& out) { out = v; }
CUPATCH_HD void from_float(float v, float16_t& out) { out.bits = float_to_half_bits(v); }
CUPATCH_HD void from_float(float v, bfloat16_t& out) { out.bits = float_to_bfloat16_bits(v); }

}  // namespace cupatch
