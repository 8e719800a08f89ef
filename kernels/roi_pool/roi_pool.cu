// CUDA launchers of ROI max pooling: one grid-stride kernel over the output elements.
#include "roi_pool.h"

namespace edge {
namespace roi_pool {

template <class T, class TR>
__global__ void roi_pool_kernel(const T* __restrict__ x, const TR* __restrict__ rois, T* __restrict__ out,
                                RoiPoolShape shape, index_t total) {
    const index_t stride = static_cast<index_t>(blockDim.x) * gridDim.x;
    for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
        roi_pool_element<T, TR>(i, x, rois, out, shape);
    }
}

template <class T, class TR>
cudaError_t roi_pool_forward(const T* x, const TR* rois, T* out, const RoiPoolShape& shape, cudaStream_t stream) {
    const index_t total = output_size(shape);
    if (total <= 0) {
        return cudaSuccess;
    }
    const unsigned blocks = static_cast<unsigned>(grid_blocks(total));
    roi_pool_kernel<T, TR><<<blocks, kBlockSize, 0, stream>>>(x, rois, out, shape, total);
    return cudaPeekAtLastError();   // this launch's error, without clearing (or taking) an earlier one
}

template cudaError_t roi_pool_forward<float, float>(const float*, const float*, float*, const RoiPoolShape&,
                                                    cudaStream_t);
template cudaError_t roi_pool_forward<__half, float>(const __half*, const float*, __half*, const RoiPoolShape&,
                                                     cudaStream_t);

}  // namespace roi_pool
}  // namespace edge
