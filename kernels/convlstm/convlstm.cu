// CUDA launcher of the fused ConvLSTM cell: one grid-stride kernel, one thread per (n, ch, y, x) output.
#include "convlstm.h"

namespace edge {
namespace convlstm {

template <class T>
__global__ void convlstm_kernel(const T* __restrict__ x, const T* __restrict__ h, const T* __restrict__ c,
                                const T* __restrict__ weight, const T* __restrict__ bias, T* __restrict__ h_out,
                                T* __restrict__ c_out, ConvLstmShape shape, index_t total) {
    const index_t stride = static_cast<index_t>(blockDim.x) * gridDim.x;
    for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
        convlstm_element<T>(i, x, h, c, weight, bias, h_out, c_out, shape);
    }
}

template <class T>
cudaError_t convlstm_forward(const T* x, const T* h, const T* c, const T* weight, const T* bias, T* h_out, T* c_out,
                             const ConvLstmShape& shape, cudaStream_t stream) {
    const index_t total = output_size(shape);
    if (total <= 0) {
        return cudaSuccess;
    }
    const unsigned blocks = static_cast<unsigned>(grid_blocks(total));
    convlstm_kernel<T><<<blocks, kBlockSize, 0, stream>>>(x, h, c, weight, bias, h_out, c_out, shape, total);
    return cudaGetLastError();
}

template cudaError_t convlstm_forward<float>(const float*, const float*, const float*, const float*, const float*,
                                             float*, float*, const ConvLstmShape&, cudaStream_t);
template cudaError_t convlstm_forward<__half>(const __half*, const __half*, const __half*, const __half*,
                                              const __half*, __half*, __half*, const ConvLstmShape&, cudaStream_t);

}  // namespace convlstm
}  // namespace edge
