// C entry points of both CUDA launchers for bench/gpu_kernels.py (ctypes, device pointers from PyTorch).
// Each returns the launcher's cudaError_t as an int (0 = success); launches are asynchronous on `stream`.
#include "convlstm/convlstm.h"
#include "roi_pool/roi_pool.h"

using edge::convlstm::ConvLstmShape;
using edge::roi_pool::RoiPoolShape;

extern "C" {

int edge_roi_pool(int half, const void* x, const float* rois, void* out, int n, int c, int h, int w, int r, int ph,
                  int pw, float scale, void* stream) {
    const RoiPoolShape s{n, c, h, w, r, ph, pw, scale};
    const auto st = static_cast<cudaStream_t>(stream);
    return half ? edge::roi_pool::roi_pool_forward(static_cast<const __half*>(x), rois, static_cast<__half*>(out), s, st)
                : edge::roi_pool::roi_pool_forward(static_cast<const float*>(x), rois, static_cast<float*>(out), s, st);
}

// half: x, h, W, B, h' in __half; the cell state c, c' is float either way
int edge_convlstm(int half, const void* x, const void* h, const float* c, const void* weight, const void* bias,
                  void* h_out, float* c_out, int n, int cx, int ch, int hh, int ww, int k, void* stream) {
    const ConvLstmShape s{n, cx, ch, hh, ww, k};
    const auto st = static_cast<cudaStream_t>(stream);
    if (half) {
        using T = __half;
        return edge::convlstm::convlstm_forward(static_cast<const T*>(x), static_cast<const T*>(h), c,
                                                static_cast<const T*>(weight), static_cast<const T*>(bias),
                                                static_cast<T*>(h_out), c_out, s, st);
    }
    return edge::convlstm::convlstm_forward(static_cast<const float*>(x), static_cast<const float*>(h), c,
                                            static_cast<const float*>(weight), static_cast<const float*>(bias),
                                            static_cast<float*>(h_out), c_out, s, st);
}

}  // extern "C"
