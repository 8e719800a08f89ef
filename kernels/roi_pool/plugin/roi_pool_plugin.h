// TensorRT IPluginV3 "RoiPool" (version "1", default namespace): ONNX MaxRoiPool semantics, the plugin
// face of the edge.ops::RoiPool node. Inputs: features [N, C, H, W] (fp32/fp16), rois [R, 5] (fp32 only: a
// weakly typed fp16 build cannot put the boxes in half). Output [R, C, PH, PW] of the feature type.
// Fields: pooled_shape (int32 x2, > 0, required), spatial_scale (float32, > 0, default 1.0 as in ONNX).
#pragma once

#include "../../common/plugin_utils.h"

namespace edge {
namespace plugin {

constexpr char const* kRoiPoolName = "RoiPool";

class RoiPoolPlugin final : public PluginBase {
public:
    RoiPoolPlugin(int32_t pooled_h, int32_t pooled_w, float spatial_scale);  // throws PluginError if invalid

    // IPluginV3
    nvinfer1::IPluginV3* clone() noexcept override;
    // IPluginV3OneCore
    char const* getPluginName() const noexcept override { return kRoiPoolName; }
    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override { return 1; }
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
                               nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
                            nvinfer1::DimsExprs const* shapeInputs, int32_t nbShapeInputs,
                            nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                            nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override;
    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
                          nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                    void const* const* inputs, void* const* outputs, void* workspace,
                    cudaStream_t stream) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    int32_t mPooled[2];
    float mSpatialScale;
    std::vector<nvinfer1::PluginField> mSerialFields;
    nvinfer1::PluginFieldCollection mSerialCollection{};
};

class RoiPoolCreator final : public CreatorBase {
public:
    RoiPoolCreator();
    char const* getPluginName() const noexcept override { return kRoiPoolName; }
    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                      nvinfer1::TensorRTPhase phase) noexcept override;
};

}  // namespace plugin
}  // namespace edge
