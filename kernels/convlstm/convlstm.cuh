// Fused ConvLSTM cell (Ego-RNN form): the per-output-element body (host and device).
//
// Oracle: kernels/convlstm/reference.py. For output (n, ch, y, x) one call computes the four gate
// pre-activations z_g = B[g*Ch + ch] + sum_{ci, ky, kx} W[g*Ch + ch, ci, ky, kx] * cat(x, h)[n, ci, y+ky-p, x+kx-p]
// (zero padding p = k // 2, gate order i, f, o, g), applies the gates and writes only
//   c' = sigmoid(z_f) * c + sigmoid(z_i) * tanh(z_g),   h' = sigmoid(z_o) * tanh(c').
// The 4*Ch pre-activations live in registers only. Accumulation is float32 for every I/O type.
// Shapes: x [N, Cx, H, W], h/c/h'/c' [N, Ch, H, W], W [4*Ch, Cx+Ch, k, k] (k odd), B [4*Ch].
#pragma once

#include "../common/hd.cuh"

namespace edge {
namespace convlstm {

struct ConvLstmShape {
    int n, cx, ch, h, w;    // batch, input channels, hidden channels, height, width
    int k;                  // kernel size (odd)
};

EDGE_HD index_t output_size(const ConvLstmShape& s) {
    return static_cast<index_t>(s.n) * s.ch * s.h * s.w;
}

EDGE_HD float sigmoidf(float z) { return 1.0f / (1.0f + expf(-z)); }

// Computes h'[idx] and c'[idx] (idx = ((n * Ch + ch) * H + y) * W + x).
template <class T>
EDGE_HD void convlstm_element(index_t idx, const T* x, const T* h, const T* c, const T* weight, const T* bias,
                              T* h_out, T* c_out, const ConvLstmShape& s) {
    const int ox = static_cast<int>(idx % s.w);
    const int oy = static_cast<int>((idx / s.w) % s.h);
    const int ch = static_cast<int>((idx / (static_cast<index_t>(s.w) * s.h)) % s.ch);
    const index_t n = idx / (static_cast<index_t>(s.w) * s.h * s.ch);

    const int cin = s.cx + s.ch;
    const int pad = s.k / 2;
    const index_t plane = static_cast<index_t>(s.h) * s.w;
    const index_t kk = static_cast<index_t>(s.k) * s.k;
    const index_t gate_stride = static_cast<index_t>(s.ch) * cin * kk;   // W rows of one gate
    // kernel window clipped to the map: no per-tap bounds checks in the inner loops
    const int ky0 = imax(0, pad - oy), ky1 = imin(s.k, s.h + pad - oy);
    const int kx0 = imax(0, pad - ox), kx1 = imin(s.k, s.w + pad - ox);

    float acc[4];
    for (int g = 0; g < 4; ++g) {
        acc[g] = to_float(bias[g * s.ch + ch]);
    }
    for (int ci = 0; ci < cin; ++ci) {
        const T* src = ci < s.cx ? x + (n * s.cx + ci) * plane : h + (n * s.ch + (ci - s.cx)) * plane;
        const T* wrow = weight + (static_cast<index_t>(ch) * cin + ci) * kk;   // gate i; + g * gate_stride
        for (int ky = ky0; ky < ky1; ++ky) {
            const index_t row = static_cast<index_t>(oy + ky - pad) * s.w + (ox - pad);   // + kx >= 0
            for (int kx = kx0; kx < kx1; ++kx) {
                const float v = to_float(src[row + kx]);
                const index_t t = static_cast<index_t>(ky) * s.k + kx;
                acc[0] += v * to_float(wrow[t]);
                acc[1] += v * to_float(wrow[gate_stride + t]);
                acc[2] += v * to_float(wrow[2 * gate_stride + t]);
                acc[3] += v * to_float(wrow[3 * gate_stride + t]);
            }
        }
    }
    const float gi = sigmoidf(acc[0]);
    const float gf = sigmoidf(acc[1]);
    const float go = sigmoidf(acc[2]);
    const float gg = tanhf(acc[3]);
    const float c_next = gf * to_float(c[idx]) + gi * gg;
    c_out[idx] = from_float<T>(c_next);
    h_out[idx] = from_float<T>(go * tanhf(c_next));
}

}  // namespace convlstm
}  // namespace edge
