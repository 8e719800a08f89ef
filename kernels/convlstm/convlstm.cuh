// Fused ConvLSTM cell (Ego-RNN form): the tiled kernel's per-block pieces (host and device).
//
// Oracle: kernels/convlstm/reference.py. For output (n, ch, y, x) the four gate pre-activations
//   z_g = B[g*Ch + ch] + sum_{ci, ky, kx} W[g*Ch + ch, ci, ky, kx] * cat(x, h)[n, ci, y+ky-p, x+kx-p]
// (zero padding p = k // 2, gate order i, f, o, g) give c' = sigmoid(z_f) * c + sigmoid(z_i) * tanh(z_g) and
// h' = sigmoid(z_o) * tanh(c'); the 4*Ch pre-activations live in registers only.
//
// Work split (``TilePlan``, chosen on the host by ``plan_tiles``): a block owns a TH x TW pixel tile of one
// image and CB hidden channels. Its threads are (pixel, channel group, input-channel slice) triples: each
// thread keeps kCpt hidden channels x 4 gates = 16 float accumulators for one pixel. Input channels are
// staged through shared memory CI at a time: the input halo tile [CI][TH+k-1][TW+k-1] and the weights
// [CI][k*k][4][CB] (CB innermost: a thread reads its 4 channels of one gate as one float4 / two half2).
// With KS > 1 input-channel slices, the slices' partial sums are added through shared memory at the end.
// Accumulation is float32 for every I/O type; the cell state c/c' has its own type TS (float on the fp16
// path, so the state never rounds to half).
//
// The kernel (convlstm.cu) is: init_acc; for each stage { stage_load; __syncthreads(); stage_accumulate;
// __syncthreads(); } then, with KS > 1, reduce_write; __syncthreads(); and finish. The host tests run exactly
// these functions over an emulated grid, one phase for all threads of a block at a time (= the barriers).
// Shapes: x [N, Cx, H, W], h/h' [N, Ch, H, W], c/c' [N, Ch, H, W] (type TS), W [4*Ch, Cx+Ch, k, k] (k odd),
// B [4*Ch].
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

constexpr int kCpt = 4;                    // hidden channels per thread (x 4 gates = 16 accumulators)
constexpr int kMaxThreads = 256;           // threads per block (__launch_bounds__)
constexpr int kMaxStageCi = 16;            // input channels per shared-memory stage, at most
constexpr int kStageBytes = 24 * 1024;     // shared-memory budget of one stage
constexpr int kMaxSmemBytes = 48 * 1024;   // without the opt-in attribute
constexpr int kMaxGridZ = 65535;

struct TilePlan {
    int th, tw;             // pixel tile
    int cb;                 // hidden channels per block (multiple of kCpt)
    int ks;                 // input-channel slices per block (threads splitting the staged channels)
    int ci;                 // input channels per stage
    int halo_h, halo_w;     // th + k - 1, tw + k - 1
    int tiles_x, tiles_y, ch_blocks;
    int threads;            // th * tw * (cb / kCpt) * ks
    int weight_offset;      // elements: the weights follow the input halo (aligned to 8 elements)
    int smem_elems;         // stage elements (T)
    int smem_bytes;         // dynamic shared memory per block: max(stage, slice reduction)
};

EDGE_HD int ceil_div(int a, int b) { return (a + b - 1) / b; }

// The block shape for a problem: a pixel tile of <= 128 pixels (the whole map when it is that small), then
// as many channel groups and input-channel slices as fit kMaxThreads while the grid still has >= 2 blocks
// per SM (sm_count), then the most input channels per stage that fit kStageBytes. threads == 0: no plan
// (a kernel size too large for shared memory).
EDGE_HD TilePlan plan_tiles(const ConvLstmShape& s, int elem_bytes, int sm_count) {
    TilePlan p{};
    const int cin = s.cx + s.ch;
    p.tw = imin(s.w, 16);
    p.th = imin(s.h, imax(1, 128 / p.tw));
    p.tiles_x = ceil_div(s.w, p.tw);
    p.tiles_y = ceil_div(s.h, p.th);
    const int pixels = p.th * p.tw;
    const int groups_max = ceil_div(s.ch, kCpt);
    const int batch_blocks = imin(s.n, kMaxGridZ);
    int groups = 1;
    for (int g = 4; g > 1; g /= 2) {   // more channels per block reuse each staged input more; keep blocks
        const long long blocks = static_cast<long long>(p.tiles_x) * p.tiles_y * ceil_div(s.ch, g * kCpt) *
                                 batch_blocks;
        if (g <= groups_max && pixels * g <= kMaxThreads && blocks >= 2LL * sm_count) {
            groups = g;
            break;
        }
    }
    for (;; groups = 1) {               // a large kernel that does not fit: one channel group
        p.cb = groups * kCpt;
        p.ch_blocks = ceil_div(s.ch, p.cb);
        p.ks = 1;
        while (p.ks < 8 && pixels * groups * p.ks * 2 <= kMaxThreads && p.ks * 2 <= cin) {
            p.ks *= 2;
        }
        p.threads = pixels * groups * p.ks;
        p.halo_h = p.th + s.k - 1;
        p.halo_w = p.tw + s.k - 1;
        const int per_ci = p.halo_h * p.halo_w + 4 * p.cb * s.k * s.k + 8;   // + alignment slack
        p.ci = imin(imin(kMaxStageCi, cin), imax(1, kStageBytes / (per_ci * elem_bytes)));
        p.ci = imax(p.ci, p.ks);
        p.weight_offset = (p.ci * p.halo_h * p.halo_w + 7) / 8 * 8;
        p.smem_elems = p.weight_offset + p.ci * s.k * s.k * 4 * p.cb;
        const int reduce_bytes = p.ks > 1 ? p.threads * kCpt * 4 * static_cast<int>(sizeof(float)) : 0;
        p.smem_bytes = imax(p.smem_elems * elem_bytes, reduce_bytes);
        if (p.smem_bytes <= kMaxSmemBytes || groups == 1) {
            break;
        }
    }
    if (p.smem_bytes > kMaxSmemBytes || p.ch_blocks > kMaxGridZ) {
        p.threads = 0;
    }
    return p;
}

// Which block of the grid: pixel tile (blockIdx.x), hidden-channel block (blockIdx.y), image (blockIdx.z,
// striding by gridDim.z when N > 65535).
struct BlockPos {
    int tile, cblock, n;
};

// What one thread works on within its block: pixel (py, px) of the tile, channel group, input slice.
struct ThreadPos {
    int py, px, group, slice;
};

EDGE_HD ThreadPos thread_pos(const TilePlan& p, int tid) {
    const int pixels = p.th * p.tw;
    const int groups = p.cb / kCpt;
    ThreadPos t;
    const int pix = tid % pixels;           // consecutive threads = consecutive pixels (weight reads broadcast)
    t.py = pix / p.tw;
    t.px = pix % p.tw;
    t.group = (tid / pixels) % groups;
    t.slice = tid / (pixels * groups);
    return t;
}

struct Acc {
    float v[kCpt][4];       // [channel of the group][gate]
};

// Four consecutive elements as floats (a float4 / two half2 loads on the device).
EDGE_HD void load4(const float* p, float* o) {
#ifdef __CUDA_ARCH__
    const float4 v = *reinterpret_cast<const float4*>(p);
    o[0] = v.x, o[1] = v.y, o[2] = v.z, o[3] = v.w;
#else
    o[0] = p[0], o[1] = p[1], o[2] = p[2], o[3] = p[3];
#endif
}

EDGE_HD void load4(const host_half* p, float* o) {
    for (int j = 0; j < 4; ++j) {
        o[j] = to_float(p[j]);
    }
}

#ifdef __CUDACC__
EDGE_HD void load4(const __half* p, float* o) {
#ifdef __CUDA_ARCH__
    const __half2* q = reinterpret_cast<const __half2*>(p);
    const float2 a = __half22float2(q[0]);
    const float2 b = __half22float2(q[1]);
    o[0] = a.x, o[1] = a.y, o[2] = b.x, o[3] = b.y;
#else
    for (int j = 0; j < 4; ++j) {
        o[j] = __half2float(p[j]);
    }
#endif
}
#endif

// Accumulators start at the bias (slice 0 only: the other slices' partial sums are added to it).
template <class T>
EDGE_HD void init_acc(const T* bias, const ConvLstmShape& s, const TilePlan& p, BlockPos b, int tid, Acc& acc) {
    const ThreadPos t = thread_pos(p, tid);
    for (int j = 0; j < kCpt; ++j) {
        const int ch = b.cblock * p.cb + t.group * kCpt + j;
        for (int g = 0; g < 4; ++g) {
            acc.v[j][g] = (t.slice == 0 && ch < s.ch) ? to_float(bias[g * s.ch + ch]) : 0.0f;
        }
    }
}

// Cooperative load of stage `ci0` (input channels ci0 .. ci0 + CI - 1) by thread `tid` of p.threads: the zero
// padded input halo and the weights of the block's channels. Entries past the last input channel or hidden
// channel are zero.
template <class T>
EDGE_HD void stage_load(const T* x, const T* h, const T* weight, const ConvLstmShape& s, const TilePlan& p,
                        BlockPos b, int ci0, int tid, T* smem) {
    const int cin = s.cx + s.ch;
    const int pad = s.k / 2;
    const int nci = imin(p.ci, cin - ci0);
    const int y0 = (b.tile / p.tiles_x) * p.th - pad;
    const int x0 = (b.tile % p.tiles_x) * p.tw - pad;
    const index_t plane = static_cast<index_t>(s.h) * s.w;
    const int halo = p.halo_h * p.halo_w;
    const T zero = from_float<T>(0.0f);
    for (int i = tid; i < p.ci * halo; i += p.threads) {
        const int c = i / halo;
        const int yy = y0 + (i % halo) / p.halo_w;
        const int xx = x0 + (i % halo) % p.halo_w;
        T v = zero;
        if (c < nci && yy >= 0 && yy < s.h && xx >= 0 && xx < s.w) {
            const int ci = ci0 + c;
            const T* src = ci < s.cx ? x + (static_cast<index_t>(b.n) * s.cx + ci) * plane
                                     : h + (static_cast<index_t>(b.n) * s.ch + (ci - s.cx)) * plane;
            v = src[static_cast<index_t>(yy) * s.w + xx];
        }
        smem[i] = v;
    }
    T* sw = smem + p.weight_offset;
    const int kk = s.k * s.k;
    const int count = p.ci * kk * 4 * p.cb;
    for (int i = tid; i < count; i += p.threads) {   // i walks W's own order (tap fastest): coalesced reads
        const int tap = i % kk;
        int rest = i / kk;
        const int c = rest % p.ci;
        rest /= p.ci;
        const int cbi = rest % p.cb;
        const int g = rest / p.cb;
        const int ch = b.cblock * p.cb + cbi;
        T v = zero;
        if (c < nci && ch < s.ch) {
            v = weight[(static_cast<index_t>(g * s.ch + ch) * cin + ci0 + c) * kk + tap];
        }
        sw[((c * kk + tap) * 4 + g) * p.cb + cbi] = v;
    }
}

// Thread `tid` adds its slice of the staged input channels to its accumulators. K > 0: the kernel size as a
// compile-time constant (unrolled taps); K == 0: s.k at run time.
template <class T, int K>
EDGE_HD void stage_accumulate(const ConvLstmShape& s, const TilePlan& p, int ci0, int tid, const T* smem,
                              Acc& acc) {
    const int k = K > 0 ? K : s.k;
    const int kk = k * k;
    const ThreadPos t = thread_pos(p, tid);
    const int nci = imin(p.ci, s.cx + s.ch - ci0);
    const T* sw = smem + p.weight_offset + t.group * kCpt;
    for (int c = t.slice; c < nci; c += p.ks) {
        const T* in = smem + (c * p.halo_h + t.py) * p.halo_w + t.px;
        const T* wc = sw + c * kk * 4 * p.cb;
        for (int ky = 0; ky < k; ++ky) {
            for (int kx = 0; kx < k; ++kx) {
                const float v = to_float(in[ky * p.halo_w + kx]);
                const T* wt = wc + (ky * k + kx) * 4 * p.cb;
                for (int g = 0; g < 4; ++g) {
                    float w4[4];
                    load4(wt + g * p.cb, w4);
                    for (int j = 0; j < kCpt; ++j) {
                        acc.v[j][g] += v * w4[j];
                    }
                }
            }
        }
    }
}

// KS > 1: every slice parks its partial sums in shared memory (as floats, over the stage buffer).
EDGE_HD void reduce_write(const TilePlan& p, int tid, const Acc& acc, float* red) {
    for (int j = 0; j < kCpt; ++j) {
        for (int g = 0; g < 4; ++g) {
            red[(j * 4 + g) * p.threads + tid] = acc.v[j][g];
        }
    }
}

// Slice 0 adds the other slices' sums (fixed order), applies the gates and writes h', c' of its pixel and
// channels. Returns the number of (pixel, channel) outputs written (0 for threads outside the map).
template <class T, class TS>
EDGE_HD int finish(const TS* c, T* h_out, TS* c_out, const ConvLstmShape& s, const TilePlan& p, BlockPos b,
                   int tid, Acc& acc, const float* red) {
    const ThreadPos t = thread_pos(p, tid);
    if (t.slice != 0) {
        return 0;
    }
    const int per_slice = p.th * p.tw * (p.cb / kCpt);
    for (int q = 1; q < p.ks; ++q) {
        for (int j = 0; j < kCpt; ++j) {
            for (int g = 0; g < 4; ++g) {
                acc.v[j][g] += red[(j * 4 + g) * p.threads + q * per_slice + tid];
            }
        }
    }
    const int y = (b.tile / p.tiles_x) * p.th + t.py;
    const int x = (b.tile % p.tiles_x) * p.tw + t.px;
    if (y >= s.h || x >= s.w) {
        return 0;
    }
    int written = 0;
    for (int j = 0; j < kCpt; ++j) {
        const int ch = b.cblock * p.cb + t.group * kCpt + j;
        if (ch >= s.ch) {
            break;
        }
        const index_t idx = ((static_cast<index_t>(b.n) * s.ch + ch) * s.h + y) * s.w + x;
        const float gi = sigmoidf(acc.v[j][0]);
        const float gf = sigmoidf(acc.v[j][1]);
        const float go = sigmoidf(acc.v[j][2]);
        const float gg = tanhf(acc.v[j][3]);
        const float c_next = gf * to_float(c[idx]) + gi * gg;
        c_out[idx] = from_float<TS>(c_next);
        h_out[idx] = from_float<T>(go * tanhf(c_next));
        ++written;
    }
    return written;
}

}  // namespace convlstm
}  // namespace edge
