// TensorRT IPluginV3 "RoiPool": see roi_pool_plugin.h. Kernels: ../roi_pool.cu.
#include "roi_pool_plugin.h"

#include <cuda_fp16.h>

#include "../roi_pool.h"

namespace edge {
namespace plugin {

namespace {

using nvinfer1::DataType;

// Rank checks shared by build and runtime (-1 = dimension not known yet).
void check_ranks(nvinfer1::Dims const& x, nvinfer1::Dims const& rois) {
    if (x.nbDims != 4) {
        throw PluginError("features must be [N, C, H, W], got " + dims_str(x));
    }
    if (rois.nbDims != 2 || (rois.d[1] != 5 && rois.d[1] != -1)) {
        throw PluginError("rois must be [R, 5] (batch, x1, y1, x2, y2), got " + dims_str(rois));
    }
}

}  // namespace

RoiPoolPlugin::RoiPoolPlugin(int32_t pooled_h, int32_t pooled_w, float spatial_scale)
    : mPooled{pooled_h, pooled_w}, mSpatialScale(spatial_scale) {
    if (pooled_h <= 0 || pooled_w <= 0 || pooled_h > 65535 || pooled_w > 65535) {
        throw PluginError("pooled_shape must be two integers in [1, 65535], got (" + std::to_string(pooled_h) +
                          ", " + std::to_string(pooled_w) + ")");
    }
    if (!(spatial_scale > 0.0f) || !std::isfinite(spatial_scale)) {
        throw PluginError("spatial_scale must be a finite float > 0, got " + std::to_string(spatial_scale));
    }
}

nvinfer1::IPluginV3* RoiPoolPlugin::clone() noexcept {
    try {
        return new RoiPoolPlugin(mPooled[0], mPooled[1], mSpatialScale);
    } catch (std::exception const& e) {
        log_error(kRoiPoolName, e.what());
    }
    return nullptr;
}

int32_t RoiPoolPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                       nvinfer1::DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept {
    try {
        if (nbInputs != 2 || nbOutputs != 1) {
            throw PluginError("expects 2 inputs (features, rois) and 1 output");
        }
        check_ranks(in[0].desc.dims, in[1].desc.dims);
        return 0;
    } catch (std::exception const& e) {
        log_error(kRoiPoolName, e.what());
    }
    return -1;
}

int32_t RoiPoolPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
                                          int32_t nbInputs) const noexcept {
    if (nbInputs != 2 || nbOutputs != 1 || !is_float_or_half(inputTypes[0])) {
        log_error(kRoiPoolName, "features must be float32 or float16; expects 2 inputs and 1 output");
        return -1;
    }
    outputTypes[0] = inputTypes[0];
    return 0;
}

int32_t RoiPoolPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
                                       nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/,
                                       nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                                       nvinfer1::IExprBuilder& exprBuilder) noexcept {
    if (nbInputs != 2 || nbOutputs != 1 || inputs[0].nbDims != 4 || inputs[1].nbDims != 2) {
        log_error(kRoiPoolName, "features must be rank 4 and rois rank 2 ([R, 5])");
        return -1;
    }
    outputs[0].nbDims = 4;
    outputs[0].d[0] = inputs[1].d[0];                       // R
    outputs[0].d[1] = inputs[0].d[1];                       // C
    outputs[0].d[2] = exprBuilder.constant(mPooled[0]);     // PH
    outputs[0].d[3] = exprBuilder.constant(mPooled[1]);     // PW
    return 0;
}

bool RoiPoolPlugin::supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut,
                                              int32_t nbInputs, int32_t nbOutputs) noexcept {
    if (nbInputs != 2 || nbOutputs != 1 || pos < 0 || pos > 2) {
        return false;
    }
    nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != nvinfer1::TensorFormat::kLINEAR) {
        return false;
    }
    switch (pos) {
    case 0: return is_float_or_half(desc.type);                                         // features
    case 1: return desc.type == DataType::kFLOAT;   // rois: float32 only (fp16 boxes at 128-256 px shift bins)
    default: return desc.type == inOut[0].desc.type;                                    // output
    }
}

int32_t RoiPoolPlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
                                     nvinfer1::PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept {
    try {
        if (nbInputs != 2 || nbOutputs != 1) {
            throw PluginError("expects 2 inputs and 1 output");
        }
        check_ranks(in[0].dims, in[1].dims);
        return 0;
    } catch (std::exception const& e) {
        log_error(kRoiPoolName, e.what());
    }
    return -1;
}

int32_t RoiPoolPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
                               nvinfer1::PluginTensorDesc const* /*outputDesc*/, void const* const* inputs,
                               void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept {
    try {
        nvinfer1::Dims const& xd = inputDesc[0].dims;
        nvinfer1::Dims const& rd = inputDesc[1].dims;
        check_ranks(xd, rd);
        roi_pool::RoiPoolShape shape{};
        shape.n = to_int_dim(xd.d[0], "N");
        shape.c = to_int_dim(xd.d[1], "C");
        shape.h = to_int_dim(xd.d[2], "H");
        shape.w = to_int_dim(xd.d[3], "W");
        shape.r = to_int_dim(rd.d[0], "R");
        shape.ph = mPooled[0];
        shape.pw = mPooled[1];
        shape.spatial_scale = mSpatialScale;
        DataType const xt = inputDesc[0].type;
        DataType const rt = inputDesc[1].type;
        cudaError_t err = cudaErrorInvalidValue;
        if (xt == DataType::kFLOAT && rt == DataType::kFLOAT) {
            err = roi_pool::roi_pool_forward(static_cast<float const*>(inputs[0]), static_cast<float const*>(inputs[1]),
                                             static_cast<float*>(outputs[0]), shape, stream);
        } else if (xt == DataType::kHALF && rt == DataType::kFLOAT) {
            err = roi_pool::roi_pool_forward(static_cast<__half const*>(inputs[0]),
                                             static_cast<float const*>(inputs[1]), static_cast<__half*>(outputs[0]),
                                             shape, stream);
        } else {
            throw PluginError("unsupported type combination of features and rois");
        }
        if (err != cudaSuccess) {
            throw PluginError(std::string("kernel launch failed: ") + cudaGetErrorString(err));
        }
        return 0;
    } catch (std::exception const& e) {
        log_error(kRoiPoolName, e.what());
    }
    return -1;
}

nvinfer1::PluginFieldCollection const* RoiPoolPlugin::getFieldsToSerialize() noexcept {
    mSerialFields.clear();
    mSerialFields.emplace_back("pooled_shape", mPooled, nvinfer1::PluginFieldType::kINT32, 2);
    mSerialFields.emplace_back("spatial_scale", &mSpatialScale, nvinfer1::PluginFieldType::kFLOAT32, 1);
    mSerialCollection.nbFields = static_cast<int32_t>(mSerialFields.size());
    mSerialCollection.fields = mSerialFields.data();
    return &mSerialCollection;
}

RoiPoolCreator::RoiPoolCreator()
    : CreatorBase({nvinfer1::PluginField("pooled_shape", nullptr, nvinfer1::PluginFieldType::kINT32, 2),
                   nvinfer1::PluginField("spatial_scale", nullptr, nvinfer1::PluginFieldType::kFLOAT32, 1)}) {}

nvinfer1::IPluginV3* RoiPoolCreator::createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                                  nvinfer1::TensorRTPhase /*phase*/) noexcept {
    try {
        reject_unknown_fields(fc, {"pooled_shape", "spatial_scale"});
        nvinfer1::PluginField const* pooled = find_field(fc, "pooled_shape");
        if (pooled == nullptr) {
            throw PluginError("missing required field 'pooled_shape'");
        }
        std::vector<int64_t> const ps = read_ints(*pooled);
        if (ps.size() != 2) {
            throw PluginError("pooled_shape must have 2 values, got " + std::to_string(ps.size()));
        }
        for (int64_t v : ps) {
            if (v <= 0 || v > 65535) {
                throw PluginError("pooled_shape values must be in [1, 65535], got " + std::to_string(v));
            }
        }
        nvinfer1::PluginField const* scale = find_field(fc, "spatial_scale");
        float const spatial_scale = scale == nullptr ? 1.0f : read_float(*scale);
        return new RoiPoolPlugin(static_cast<int32_t>(ps[0]), static_cast<int32_t>(ps[1]), spatial_scale);
    } catch (std::exception const& e) {
        std::string const where = std::string(kRoiPoolName) + " (node '" + (name ? name : "") + "')";
        log_error(where.c_str(), e.what());
    }
    return nullptr;
}

// Registered with the global plugin registry when the library is loaded (dlopen / ctypes.CDLL).
REGISTER_TENSORRT_PLUGIN(RoiPoolCreator);

}  // namespace plugin
}  // namespace edge
