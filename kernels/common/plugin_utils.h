// Shared pieces of the edge TensorRT plugins (IPluginV3 + IPluginCreatorV3One): error logging through
// TensorRT's logger, plugin-field parsing with validation, format checks and a base class wiring the three
// V3One capabilities.
//
// Works with the TensorRT 10.x (JetPack 6.2 ships 10.3) and 11.x headers; NvInferVersion.h gives
// NV_TENSORRT_MAJOR/MINOR for the few places that need to feature-detect.
#pragma once

#include <NvInferRuntime.h>
#include <NvInferVersion.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "hd.cuh"

#if NV_TENSORRT_MAJOR < 10
#error "edge plugins need TensorRT >= 10 (IPluginV3)"
#endif

namespace edge {
namespace plugin {

constexpr char const* kPluginVersion = "1";   // the ONNX parser asks for version "1" unless the node says otherwise
constexpr char const* kPluginNamespace = "";  // registered in the default namespace

// A bad attribute or shape: the message is logged and the TensorRT call fails cleanly (never a crash).
class PluginError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Messages go to TensorRT's logger (the application's ILogger: what TensorRT's own plugins use), so they
// appear with TensorRT's messages and honour its severity filter; std::cerr only if TensorRT has none.
inline void log_message(nvinfer1::ILogger::Severity severity, char const* plugin, char const* what) noexcept {
    try {
        std::string const msg = std::string("[edge plugins] ") + plugin + ": " + what;
        nvinfer1::ILogger* logger = getLogger();
        if (logger != nullptr) {
            logger->log(severity, msg.c_str());
        } else {
            std::cerr << msg << std::endl;
        }
    } catch (...) {
    }
}

inline void log_error(char const* plugin, char const* what) noexcept {
    log_message(nvinfer1::ILogger::Severity::kERROR, plugin, what);
}

inline void log_warning(char const* plugin, char const* what) noexcept {
    log_message(nvinfer1::ILogger::Severity::kWARNING, plugin, what);
}

inline nvinfer1::PluginField const* find_field(nvinfer1::PluginFieldCollection const* fc, char const* name) {
    if (fc == nullptr || fc->fields == nullptr) {
        return nullptr;
    }
    for (int32_t i = 0; i < fc->nbFields; ++i) {
        if (fc->fields[i].name != nullptr && std::strcmp(fc->fields[i].name, name) == 0) {
            return &fc->fields[i];
        }
    }
    return nullptr;
}

// Throws if fc carries a field not in `known` (a typo would otherwise silently use a default).
inline void reject_unknown_fields(nvinfer1::PluginFieldCollection const* fc, std::vector<char const*> const& known) {
    if (fc == nullptr || fc->fields == nullptr) {
        return;
    }
    for (int32_t i = 0; i < fc->nbFields; ++i) {
        char const* name = fc->fields[i].name == nullptr ? "" : fc->fields[i].name;
        bool ok = false;
        for (char const* k : known) {
            ok = ok || std::strcmp(name, k) == 0;
        }
        if (!ok) {
            throw PluginError(std::string("unknown field '") + name + "'");
        }
    }
}

// Integer field (int8/16/32/64 storage) as int64 values.
inline std::vector<int64_t> read_ints(nvinfer1::PluginField const& f) {
    using T = nvinfer1::PluginFieldType;
    if (f.data == nullptr || f.length <= 0) {
        throw PluginError(std::string("field '") + f.name + "' is empty");
    }
    std::vector<int64_t> out(static_cast<size_t>(f.length));
    for (int32_t i = 0; i < f.length; ++i) {
        switch (f.type) {
        case T::kINT8: out[i] = static_cast<int8_t const*>(f.data)[i]; break;
        case T::kINT16: out[i] = static_cast<int16_t const*>(f.data)[i]; break;
        case T::kINT32: out[i] = static_cast<int32_t const*>(f.data)[i]; break;
        case T::kINT64: out[i] = static_cast<int64_t const*>(f.data)[i]; break;
        default: throw PluginError(std::string("field '") + f.name + "' must be integer");
        }
    }
    return out;
}

// Scalar float field (float16/32/64 storage).
inline float read_float(nvinfer1::PluginField const& f) {
    using T = nvinfer1::PluginFieldType;
    if (f.data == nullptr || f.length != 1) {
        throw PluginError(std::string("field '") + f.name + "' must hold exactly one float");
    }
    switch (f.type) {
    case T::kFLOAT16: return half_bits_to_float(*static_cast<uint16_t const*>(f.data));
    case T::kFLOAT32: return *static_cast<float const*>(f.data);
    case T::kFLOAT64: return static_cast<float>(*static_cast<double const*>(f.data));
    default: throw PluginError(std::string("field '") + f.name + "' must be float");
    }
}

inline bool is_float_or_half(nvinfer1::DataType t) {
    return t == nvinfer1::DataType::kFLOAT || t == nvinfer1::DataType::kHALF;
}

inline std::string dims_str(nvinfer1::Dims const& d) {
    std::string s = "[";
    for (int32_t i = 0; i < d.nbDims; ++i) {
        s += (i ? ", " : "") + std::to_string(static_cast<long long>(d.d[i]));
    }
    return s + "]";
}

// A dimension fits the kernels' int shape fields.
inline int to_int_dim(int64_t v, char const* what) {
    if (v < 0 || v > 0x7fffffff) {
        throw PluginError(std::string(what) + " out of range: " + std::to_string(static_cast<long long>(v)));
    }
    return static_cast<int>(v);
}

// The IPluginV3 object of every edge plugin: one C++ object serving the core, build and runtime capabilities.
class PluginBase : public nvinfer1::IPluginV3,
                   public nvinfer1::IPluginV3OneCore,
                   public nvinfer1::IPluginV3OneBuild,
                   public nvinfer1::IPluginV3OneRuntime {
public:
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override {
        switch (type) {
        case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
        case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
        case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept override {
        return clone();
    }
};

// Creator base: name/version/namespace and the declared field list (what the ONNX parser converts to).
class CreatorBase : public nvinfer1::IPluginCreatorV3One {
public:
    explicit CreatorBase(std::vector<nvinfer1::PluginField> fields) : mFields(std::move(fields)) {
        mCollection.nbFields = static_cast<int32_t>(mFields.size());
        mCollection.fields = mFields.empty() ? nullptr : mFields.data();
    }
    CreatorBase(CreatorBase const&) = delete;
    CreatorBase& operator=(CreatorBase const&) = delete;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override { return &mCollection; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

}  // namespace plugin
}  // namespace edge
