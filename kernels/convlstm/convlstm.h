// Host API of the fused ConvLSTM cell CUDA launcher (implemented in convlstm.cu). Includable from plain C++.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "convlstm.cuh"

namespace edge {
namespace convlstm {

// (h', c') = ConvLSTMCell(x, h, c, W, B) in ONE kernel (no pre-activation tensor); T = float or __half.
// h_out/c_out must not alias the inputs. Asynchronous on `stream`; returns the launch error.
template <class T>
cudaError_t convlstm_forward(const T* x, const T* h, const T* c, const T* weight, const T* bias, T* h_out, T* c_out,
                             const ConvLstmShape& shape, cudaStream_t stream);

extern template cudaError_t convlstm_forward<float>(const float*, const float*, const float*, const float*,
                                                    const float*, float*, float*, const ConvLstmShape&,
                                                    cudaStream_t);
extern template cudaError_t convlstm_forward<__half>(const __half*, const __half*, const __half*, const __half*,
                                                     const __half*, __half*, __half*, const ConvLstmShape&,
                                                     cudaStream_t);

}  // namespace convlstm
}  // namespace edge
