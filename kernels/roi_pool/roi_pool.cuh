// ROI max pooling, ONNX MaxRoiPool semantics: the per-output-element body (host and device).
//
// Oracle: kernels/roi_pool/reference.py. Float math follows it step by step in float32: corner * scale
// (one rounded multiply), rounded half away from zero (C roundf, exact), roi at least 1x1,
// bin = roi_size / pooled_size, bin rows [floor(p * bin), ceil((p + 1) * bin)) offset by the roi start and
// clipped to the map, empty bin = 0. rois are [R, 5] (batch, x1, y1, x2, y2); output [R, C, PH, PW].
// An out-of-range or non-finite batch index yields zeros (callers validate; a kernel never faults).
#pragma once

#include "../common/hd.cuh"

namespace edge {
namespace roi_pool {

struct RoiPoolShape {
    int n, c, h, w;         // features [N, C, H, W]
    int r;                  // number of rois
    int ph, pw;             // pooled size
    float spatial_scale;
};

EDGE_HD index_t output_size(const RoiPoolShape& s) {
    return static_cast<index_t>(s.r) * s.c * s.ph * s.pw;
}

// C round (half away from zero) as an int; magnitudes beyond 2^30 are clamped (no UB on absurd boxes)
EDGE_HD int round_half_away(float v) {
    float a = fabsf(roundf(v));
    a = a < 1073741824.0f ? a : 1073741824.0f;
    const int i = static_cast<int>(a);
    return v < 0.0f ? -i : i;
}

// bin [start, end) along one axis for pooled index p; start of roi, roi size >= 1, map extent
EDGE_HD void bin_range(int p, int pooled, int roi_start, int roi_end, int extent, int* start, int* end) {
    // corners are clamped to +-2^30: end - start + 1 needs 64 bits (2^31 + 1 for a box clamped at both ends)
    const long long span = static_cast<long long>(roi_end) - roi_start + 1;
    const float bin = static_cast<float>(span > 1 ? span : 1) / static_cast<float>(pooled);
    // floorf/ceilf results are small integers (<= roi size): long long keeps the sum free of overflow
    const long long lo = static_cast<long long>(floorf(mul_rn(static_cast<float>(p), bin))) + roi_start;
    const long long hi = static_cast<long long>(ceilf(mul_rn(static_cast<float>(p + 1), bin))) + roi_start;
    *start = static_cast<int>(lo < 0 ? 0 : (lo > extent ? extent : lo));
    *end = static_cast<int>(hi < 0 ? 0 : (hi > extent ? extent : hi));
}

// Computes output element `idx` of out[R, C, PH, PW] (idx = ((r * C + c) * PH + ph) * PW + pw).
template <class T, class TR>
EDGE_HD void roi_pool_element(index_t idx, const T* x, const TR* rois, T* out, const RoiPoolShape& s) {
    const int pw = static_cast<int>(idx % s.pw);
    const int ph = static_cast<int>((idx / s.pw) % s.ph);
    const int c = static_cast<int>((idx / (static_cast<index_t>(s.pw) * s.ph)) % s.c);
    const index_t r = idx / (static_cast<index_t>(s.pw) * s.ph * s.c);

    const TR* roi = rois + r * 5;
    const float bf = to_float(roi[0]);
    if (!(bf >= 0.0f && bf < static_cast<float>(s.n))) {   // also catches NaN
        out[idx] = from_float<T>(0.0f);
        return;
    }
    const int b = static_cast<int>(bf);                      // truncation, as .to(int64)
    const int x1 = round_half_away(mul_rn(to_float(roi[1]), s.spatial_scale));
    const int y1 = round_half_away(mul_rn(to_float(roi[2]), s.spatial_scale));
    const int x2 = round_half_away(mul_rn(to_float(roi[3]), s.spatial_scale));
    const int y2 = round_half_away(mul_rn(to_float(roi[4]), s.spatial_scale));

    int hs, he, ws, we;
    bin_range(ph, s.ph, y1, y2, s.h, &hs, &he);
    bin_range(pw, s.pw, x1, x2, s.w, &ws, &we);
    if (he <= hs || we <= ws) {
        out[idx] = from_float<T>(0.0f);
        return;
    }
    const T* plane = x + (static_cast<index_t>(b) * s.c + c) * s.h * s.w;
    float m = -INFINITY;
    for (int yy = hs; yy < he; ++yy) {
        const T* row = plane + static_cast<index_t>(yy) * s.w;
        for (int xx = ws; xx < we; ++xx) {
            m = fmax_nan(m, to_float(row[xx]));
        }
    }
    out[idx] = from_float<T>(m);
}

}  // namespace roi_pool
}  // namespace edge
