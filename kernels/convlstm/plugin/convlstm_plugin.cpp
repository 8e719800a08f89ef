// TensorRT IPluginV3 "ConvLSTMCell": see convlstm_plugin.h. Kernel: ../convlstm.cu (one fused kernel).
#include "convlstm_plugin.h"

#include <cuda_fp16.h>

#include "../convlstm.h"

namespace edge {
namespace plugin {

namespace {

using nvinfer1::DataType;

constexpr int32_t kInputs = 5;   // x, h, c, W, B
constexpr int32_t kOutputs = 2;  // h', c'
constexpr int32_t kStateIn = 2;  // c (float32)
constexpr int32_t kStateOut = 1; // c' (float32)

// Checks ranks and every relation between known dimensions (-1 = not known yet at build time).
void check_shapes(nvinfer1::Dims const* d) {
    static char const* const names[kInputs] = {"x", "h", "c", "W", "B"};
    static int32_t const ranks[kInputs] = {4, 4, 4, 4, 1};
    for (int32_t i = 0; i < kInputs; ++i) {
        if (d[i].nbDims != ranks[i]) {
            throw PluginError(std::string(names[i]) + " must be rank " + std::to_string(ranks[i]) + ", got " +
                              dims_str(d[i]));
        }
    }
    auto same = [](int64_t a, int64_t b) { return a < 0 || b < 0 || a == b; };
    nvinfer1::Dims const &x = d[0], &h = d[1], &c = d[2], &w = d[3], &b = d[4];
    bool ok = same(h.d[0], x.d[0]) && same(h.d[2], x.d[2]) && same(h.d[3], x.d[3]);
    for (int32_t i = 0; i < 4; ++i) {
        ok = ok && same(c.d[i], h.d[i]);
    }
    if (!ok) {
        throw PluginError("h and c must be [N, Ch, H, W] matching x " + dims_str(x) + ", got " + dims_str(h) +
                          " and " + dims_str(c));
    }
    int64_t const ch = h.d[1], cx = x.d[1];
    bool const w_ok = same(w.d[0], ch < 0 ? -1 : 4 * ch) && same(w.d[1], (ch < 0 || cx < 0) ? -1 : cx + ch) &&
                      same(w.d[2], w.d[3]) && (w.d[3] < 0 || w.d[3] % 2 == 1);
    if (!w_ok) {
        throw PluginError("W must be [4*Ch, Cx+Ch, k, k] with odd k, got " + dims_str(w) + " for x " + dims_str(x) +
                          " and h " + dims_str(h));
    }
    if (!same(b.d[0], ch < 0 ? -1 : 4 * ch)) {
        throw PluginError("B must be [4*Ch], got " + dims_str(b) + " for h " + dims_str(h));
    }
}

}  // namespace

nvinfer1::IPluginV3* ConvLstmPlugin::clone() noexcept {
    try {
        return new ConvLstmPlugin();
    } catch (std::exception const& e) {
        log_error(kConvLstmName, e.what());
    }
    return nullptr;
}

int32_t ConvLstmPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                        nvinfer1::DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept {
    try {
        if (nbInputs != kInputs || nbOutputs != kOutputs) {
            throw PluginError("expects 5 inputs (x, h, c, W, B) and 2 outputs (h', c')");
        }
        nvinfer1::Dims dims[kInputs];
        for (int32_t i = 0; i < kInputs; ++i) {
            dims[i] = in[i].desc.dims;
        }
        check_shapes(dims);
        return 0;
    } catch (std::exception const& e) {
        log_error(kConvLstmName, e.what());
    }
    return -1;
}

int32_t ConvLstmPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
                                           int32_t nbInputs) const noexcept {
    if (nbInputs != kInputs || nbOutputs != kOutputs || !is_float_or_half(inputTypes[0])) {
        log_error(kConvLstmName, "x must be float32 or float16; expects 5 inputs and 2 outputs");
        return -1;
    }
    outputTypes[0] = inputTypes[0];   // h' like x
    outputTypes[1] = DataType::kFLOAT;   // c': the cell state stays float32
    return 0;
}

int32_t ConvLstmPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
                                        nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/,
                                        nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                                        nvinfer1::IExprBuilder& /*exprBuilder*/) noexcept {
    if (nbInputs != kInputs || nbOutputs != kOutputs || inputs[1].nbDims != 4) {
        log_error(kConvLstmName, "expects 5 inputs and 2 outputs; h must be rank 4");
        return -1;
    }
    outputs[0] = inputs[1];   // h' like h
    outputs[1] = inputs[1];   // c' like h (= like c)
    return 0;
}

bool ConvLstmPlugin::supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut,
                                               int32_t nbInputs, int32_t nbOutputs) noexcept {
    if (nbInputs != kInputs || nbOutputs != kOutputs || pos < 0 || pos >= kInputs + kOutputs) {
        return false;
    }
    nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != nvinfer1::TensorFormat::kLINEAR) {
        return false;
    }
    switch (pos) {
    case 0: return is_float_or_half(desc.type);                       // x
    case kStateIn:                                                    // c and c': float32 only, so a weakly
    case kInputs + kStateOut: return desc.type == DataType::kFLOAT;   // typed fp16 build keeps the state fp32
    default: return desc.type == inOut[0].desc.type;                  // h, W, B, h' follow x
    }
}

int32_t ConvLstmPlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
                                      nvinfer1::PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept {
    try {
        if (nbInputs != kInputs || nbOutputs != kOutputs) {
            throw PluginError("expects 5 inputs and 2 outputs");
        }
        nvinfer1::Dims dims[kInputs];
        for (int32_t i = 0; i < kInputs; ++i) {
            dims[i] = in[i].dims;
        }
        check_shapes(dims);
        return 0;
    } catch (std::exception const& e) {
        log_error(kConvLstmName, e.what());
    }
    return -1;
}

int32_t ConvLstmPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
                                nvinfer1::PluginTensorDesc const* /*outputDesc*/, void const* const* inputs,
                                void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept {
    try {
        nvinfer1::Dims dims[kInputs];
        for (int32_t i = 0; i < kInputs; ++i) {
            dims[i] = inputDesc[i].dims;
            if (i != kStateIn && i > 0 && inputDesc[i].type != inputDesc[0].type) {
                throw PluginError("x, h, W and B must have the same type");
            }
        }
        if (inputDesc[kStateIn].type != DataType::kFLOAT) {
            throw PluginError("the cell state c must be float32");
        }
        check_shapes(dims);
        convlstm::ConvLstmShape shape{};
        shape.n = to_int_dim(dims[0].d[0], "N");
        shape.cx = to_int_dim(dims[0].d[1], "Cx");
        shape.ch = to_int_dim(dims[1].d[1], "Ch");
        shape.h = to_int_dim(dims[0].d[2], "H");
        shape.w = to_int_dim(dims[0].d[3], "W");
        shape.k = to_int_dim(dims[3].d[3], "k");
        cudaError_t err = cudaErrorInvalidValue;
        auto const* c = static_cast<float const*>(inputs[kStateIn]);
        auto* c_next = static_cast<float*>(outputs[kStateOut]);
        if (inputDesc[0].type == DataType::kFLOAT) {
            auto in = [&](int i) { return static_cast<float const*>(inputs[i]); };
            err = convlstm::convlstm_forward(in(0), in(1), c, in(3), in(4), static_cast<float*>(outputs[0]), c_next,
                                             shape, stream);
        } else if (inputDesc[0].type == DataType::kHALF) {
            auto in = [&](int i) { return static_cast<__half const*>(inputs[i]); };
            err = convlstm::convlstm_forward(in(0), in(1), c, in(3), in(4), static_cast<__half*>(outputs[0]), c_next,
                                             shape, stream);
        } else {
            throw PluginError("unsupported data type (float32 or float16 only)");
        }
        if (err != cudaSuccess) {
            throw PluginError(std::string("kernel launch failed: ") + cudaGetErrorString(err) +
                              (err == cudaErrorInvalidConfiguration ? " (kernel window too large)" : ""));
        }
        return 0;
    } catch (std::exception const& e) {
        log_error(kConvLstmName, e.what());
    }
    return -1;
}

nvinfer1::PluginFieldCollection const* ConvLstmPlugin::getFieldsToSerialize() noexcept {
    mSerialCollection.nbFields = 0;
    mSerialCollection.fields = nullptr;
    return &mSerialCollection;
}

nvinfer1::IPluginV3* ConvLstmCreator::createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                                   nvinfer1::TensorRTPhase /*phase*/) noexcept {
    try {
        reject_unknown_fields(fc, {});
        return new ConvLstmPlugin();
    } catch (std::exception const& e) {
        std::string const where = std::string(kConvLstmName) + " (node '" + (name ? name : "") + "')";
        log_error(where.c_str(), e.what());
    }
    return nullptr;
}

// Registered with the global plugin registry when the library is loaded (dlopen / ctypes.CDLL).
REGISTER_TENSORRT_PLUGIN(ConvLstmCreator);

}  // namespace plugin
}  // namespace edge
