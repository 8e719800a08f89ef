// Host/device helpers shared by the kernel bodies (kernels/*/*.cuh).
//
// Everything here compiles with nvcc (host and device) and with a plain C++ compiler (g++ -x c++), so the
// per-element kernel bodies can be unit-tested on a machine without a GPU. Keep it free of bare max()/min()
// and of anything that needs the CUDA runtime.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#include <cuda_fp16.h>
#define EDGE_HD __host__ __device__ __forceinline__
#else
#define EDGE_HD inline
#endif

namespace edge {

using index_t = long long;  // flat element index (outputs can exceed 2^31 elements)

// Threads per block and block count of every grid-stride launch; the host harness emulates exactly this.
constexpr int kBlockSize = 256;
constexpr index_t kMaxBlocks = 4096;

EDGE_HD index_t grid_blocks(index_t total) {
    index_t blocks = (total + kBlockSize - 1) / kBlockSize;
    return blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks);
}

EDGE_HD int imin(int a, int b) { return a < b ? a : b; }
EDGE_HD int imax(int a, int b) { return a > b ? a : b; }
EDGE_HD int iclamp(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// max that propagates NaN like torch.amax
EDGE_HD float fmax_nan(float a, float b) { return (b > a || b != b) ? b : a; }

// a * b rounded once (no FMA contraction on the device), as the float32 reference computes it
EDGE_HD float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

EDGE_HD std::uint32_t float_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
#endif
}

EDGE_HD float bits_float(std::uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
#endif
}

// IEEE binary16 stored as its bits: the portable half type of host builds (same layout as __half).
struct host_half {
    std::uint16_t bits;
};

// float -> binary16, round to nearest even, NaN -> quiet NaN, overflow -> inf (F. Giesen's method).
EDGE_HD std::uint16_t float_to_half_bits(float value) {
    std::uint32_t u = float_bits(value);
    const std::uint32_t sign = u & 0x80000000u;
    u ^= sign;
    std::uint16_t out;
    if (u >= (127u + 16u) << 23) {                       // >= 65536 (or inf / NaN)
        out = u > 0x7f800000u ? 0x7e00 : 0x7c00;
    } else if (u < 113u << 23) {                         // half subnormal or zero
        const std::uint32_t magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
        const float f = bits_float(u) + bits_float(magic);
        out = static_cast<std::uint16_t>(float_bits(f) - magic);
    } else {
        const std::uint32_t odd = (u >> 13) & 1u;
        u += (static_cast<std::uint32_t>(15 - 127) << 23) + 0xfffu + odd;
        out = static_cast<std::uint16_t>(u >> 13);
    }
    return static_cast<std::uint16_t>(out | (sign >> 16));
}

EDGE_HD float half_bits_to_float(std::uint16_t h) {
    const std::uint32_t shifted_exp = 0x7c00u << 13;
    std::uint32_t o = (static_cast<std::uint32_t>(h) & 0x7fffu) << 13;
    const std::uint32_t exp = shifted_exp & o;
    o += (127u - 15u) << 23;
    if (exp == shifted_exp) {                            // inf / NaN
        o += (128u - 16u) << 23;
    } else if (exp == 0) {                               // zero / subnormal: renormalise
        o += 1u << 23;
        const float f = bits_float(o) - bits_float(113u << 23);
        o = float_bits(f);
    }
    return bits_float(o | ((static_cast<std::uint32_t>(h) & 0x8000u) << 16));
}

// Conversions between the I/O type T and the float the bodies compute in.
EDGE_HD float to_float(float v) { return v; }
EDGE_HD float to_float(host_half v) { return half_bits_to_float(v.bits); }

template <class T>
struct FromFloat;
template <>
struct FromFloat<float> {
    static EDGE_HD float make(float v) { return v; }
};
template <>
struct FromFloat<host_half> {
    static EDGE_HD host_half make(float v) { return host_half{float_to_half_bits(v)}; }
};

#ifdef __CUDACC__
EDGE_HD float to_float(__half v) { return __half2float(v); }
template <>
struct FromFloat<__half> {
    static EDGE_HD __half make(float v) { return __float2half_rn(v); }
};
#endif

template <class T>
EDGE_HD T from_float(float v) {
    return FromFloat<T>::make(v);
}

}  // namespace edge
