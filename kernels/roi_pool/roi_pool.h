// Host API of the ROI pooling CUDA launchers (implemented in roi_pool.cu). Includable from plain C++.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "roi_pool.cuh"

namespace edge {
namespace roi_pool {

// out[R, C, PH, PW] = MaxRoiPool(x[N, C, H, W], rois[R, 5]); T = float or __half, rois always float (TR): in
// half, boxes at 128-256 px have 0.125 px spacing and the bins shift.
// Asynchronous on `stream`; returns the launch error (cudaSuccess when there is nothing to do).
template <class T, class TR>
cudaError_t roi_pool_forward(const T* x, const TR* rois, T* out, const RoiPoolShape& shape, cudaStream_t stream);

extern template cudaError_t roi_pool_forward<float, float>(const float*, const float*, float*,
                                                           const RoiPoolShape&, cudaStream_t);
extern template cudaError_t roi_pool_forward<__half, float>(const __half*, const float*, __half*,
                                                            const RoiPoolShape&, cudaStream_t);

}  // namespace roi_pool
}  // namespace edge
