// TensorRT IPluginV3 "ConvLSTMCell" (version "1", default namespace): the fused ConvLSTM cell, the plugin
// face of the edge.ops::ConvLSTMCell node. Inputs x [N, Cx, H, W], h [N, Ch, H, W], c [N, Ch, H, W],
// W [4*Ch, Cx+Ch, k, k] (k odd), B [4*Ch]; outputs h', c' [N, Ch, H, W]. x, h, W, B and h' are all fp32 or
// all fp16; the cell state c and c' is always fp32 (a weakly typed fp16 build cannot put it in half, where
// its error would accumulate over time steps). Gate order i, f, o, g. No fields.
#pragma once

#include "../../common/plugin_utils.h"

namespace edge {
namespace plugin {

constexpr char const* kConvLstmName = "ConvLSTMCell";

class ConvLstmPlugin final : public PluginBase {
public:
    // IPluginV3
    nvinfer1::IPluginV3* clone() noexcept override;
    // IPluginV3OneCore
    char const* getPluginName() const noexcept override { return kConvLstmName; }
    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override { return 2; }
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
    nvinfer1::PluginFieldCollection mSerialCollection{};
};

class ConvLstmCreator final : public CreatorBase {
public:
    ConvLstmCreator() : CreatorBase({}) {}
    char const* getPluginName() const noexcept override { return kConvLstmName; }
    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                      nvinfer1::TensorRTPhase phase) noexcept override;
};

}  // namespace plugin
}  // namespace edge
