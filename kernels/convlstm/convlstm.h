// Host API of the fused ConvLSTM cell CUDA launcher (implemented in convlstm.cu). Includable from plain C++.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "convlstm.cuh"

namespace edge {
namespace convlstm {

// (h', c') = ConvLSTMCell(x, h, c, W, B) in ONE tiled kernel (no pre-activation tensor). T = float or __half
// for x, h, W, B, h'; the cell state c, c' is always float (TS): on the fp16 path the state never rounds to
// half. h_out/c_out must not alias the inputs. Asynchronous on `stream`; returns the launch error
// (cudaErrorInvalidConfiguration when the kernel window does not fit shared memory).
template <class T, class TS>
cudaError_t convlstm_forward(const T* x, const T* h, const TS* c, const T* weight, const T* bias, T* h_out,
                             TS* c_out, const ConvLstmShape& shape, cudaStream_t stream);

extern template cudaError_t convlstm_forward<float, float>(const float*, const float*, const float*, const float*,
                                                           const float*, float*, float*, const ConvLstmShape&,
                                                           cudaStream_t);
extern template cudaError_t convlstm_forward<__half, float>(const __half*, const __half*, const float*,
                                                            const __half*, const __half*, __half*, float*,
                                                            const ConvLstmShape&, cudaStream_t);

}  // namespace convlstm
}  // namespace edge
