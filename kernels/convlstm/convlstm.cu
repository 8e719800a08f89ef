// CUDA launcher of the fused ConvLSTM cell: one tiled kernel (see convlstm.cuh for the work split).
#include "convlstm.h"

namespace edge {
namespace convlstm {

template <class T, class TS, int K>
__global__ void __launch_bounds__(kMaxThreads)
convlstm_kernel(const T* __restrict__ x, const T* __restrict__ h, const TS* __restrict__ c,
                const T* __restrict__ weight, const T* __restrict__ bias, T* __restrict__ h_out,
                TS* __restrict__ c_out, ConvLstmShape shape, TilePlan plan) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T* smem = reinterpret_cast<T*>(smem_raw);
    const int tid = static_cast<int>(threadIdx.x);
    const int cin = shape.cx + shape.ch;
    for (int n = static_cast<int>(blockIdx.z); n < shape.n; n += static_cast<int>(gridDim.z)) {
        const BlockPos b{static_cast<int>(blockIdx.x), static_cast<int>(blockIdx.y), n};
        Acc acc;
        init_acc(bias, shape, plan, b, tid, acc);
        for (int ci0 = 0; ci0 < cin; ci0 += plan.ci) {
            stage_load(x, h, weight, shape, plan, b, ci0, tid, smem);
            __syncthreads();
            stage_accumulate<T, K>(shape, plan, ci0, tid, smem, acc);
            __syncthreads();
        }
        float* red = reinterpret_cast<float*>(smem_raw);
        if (plan.ks > 1) {
            reduce_write(plan, tid, acc, red);
            __syncthreads();
        }
        finish(c, h_out, c_out, shape, plan, b, tid, acc, red);
        __syncthreads();   // the next image's first stage overwrites the reduction buffer
    }
}

namespace {

int sm_count() {
    int dev = 0, count = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
        return 16;
    }
    return count;
}

}  // namespace

template <class T, class TS>
cudaError_t convlstm_forward(const T* x, const T* h, const TS* c, const T* weight, const T* bias, T* h_out,
                             TS* c_out, const ConvLstmShape& shape, cudaStream_t stream) {
    if (output_size(shape) <= 0) {
        return cudaSuccess;
    }
    const TilePlan plan = plan_tiles(shape, static_cast<int>(sizeof(T)), sm_count());
    if (plan.threads == 0) {
        return cudaErrorInvalidConfiguration;   // kernel window too large for shared memory
    }
    const dim3 grid(static_cast<unsigned>(plan.tiles_x * plan.tiles_y), static_cast<unsigned>(plan.ch_blocks),
                    static_cast<unsigned>(imin(shape.n, kMaxGridZ)));
    const dim3 block(static_cast<unsigned>(plan.threads));
    const size_t smem = static_cast<size_t>(plan.smem_bytes);
    switch (shape.k) {
    case 1:
        convlstm_kernel<T, TS, 1><<<grid, block, smem, stream>>>(x, h, c, weight, bias, h_out, c_out, shape, plan);
        break;
    case 3:
        convlstm_kernel<T, TS, 3><<<grid, block, smem, stream>>>(x, h, c, weight, bias, h_out, c_out, shape, plan);
        break;
    default:
        convlstm_kernel<T, TS, 0><<<grid, block, smem, stream>>>(x, h, c, weight, bias, h_out, c_out, shape, plan);
        break;
    }
    return cudaPeekAtLastError();   // this launch's error, without clearing (or taking) an earlier one
}

template cudaError_t convlstm_forward<float, float>(const float*, const float*, const float*, const float*,
                                                    const float*, float*, float*, const ConvLstmShape&,
                                                    cudaStream_t);
template cudaError_t convlstm_forward<__half, float>(const __half*, const __half*, const float*, const __half*,
                                                     const __half*, __half*, float*, const ConvLstmShape&,
                                                     cudaStream_t);

}  // namespace convlstm
}  // namespace edge
