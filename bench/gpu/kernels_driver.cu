// Stand-alone driver of both CUDA launchers for compute-sanitizer (memcheck, racecheck): no Python, no PyTorch
// in the checked process. bench/gpu_kernels.py writes the named cases of edge.kernels.cases to a manifest:
//   roi  NAME HALF N C H W R PH PW SCALE FILE      (FILE: x [N*C*H*W] then rois [R*5], float32)
//   cell NAME HALF N CX CH H W K FILE              (FILE: x, h, c, W, B, float32)
// Every case runs once; the exit code is 0 when every launch and synchronisation succeeded.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "convlstm/convlstm.h"
#include "roi_pool/roi_pool.h"

namespace {

std::vector<float> read_floats(const std::string& path, size_t count) {
    std::vector<float> v(count);
    FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr || std::fread(v.data(), sizeof(float), count, f) != count) {
        std::fprintf(stderr, "cannot read %zu floats from %s\n", count, path.c_str());
        std::exit(3);
    }
    std::fclose(f);
    return v;
}

// device copy of host floats, as float or as half
void* upload(const float* p, size_t count, bool half) {
    void* d = nullptr;
    if (half) {
        std::vector<__half> hv(count);
        for (size_t i = 0; i < count; ++i) hv[i] = __float2half_rn(p[i]);
        cudaMalloc(&d, count * sizeof(__half) + 1);
        cudaMemcpy(d, hv.data(), count * sizeof(__half), cudaMemcpyHostToDevice);
    } else {
        cudaMalloc(&d, count * sizeof(float) + 1);
        cudaMemcpy(d, p, count * sizeof(float), cudaMemcpyHostToDevice);
    }
    return d;
}

bool check(const char* what, const char* name, cudaError_t e) {
    if (e != cudaSuccess) {
        std::fprintf(stderr, "%s %s: %s\n", what, name, cudaGetErrorString(e));
        return false;
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s MANIFEST\n", argv[0]);
        return 2;
    }
    FILE* m = std::fopen(argv[1], "r");
    if (m == nullptr) {
        std::fprintf(stderr, "cannot open %s\n", argv[1]);
        return 2;
    }
    char kind[16], name[128], file[4096];
    int failures = 0, cases = 0;
    while (std::fscanf(m, "%15s %127s", kind, name) == 2) {
        int half = 0;
        bool ok = true;
        if (std::strcmp(kind, "roi") == 0) {
            int n, c, h, w, r, ph, pw;
            float scale;
            if (std::fscanf(m, "%d %d %d %d %d %d %d %d %f %4095s", &half, &n, &c, &h, &w, &r, &ph, &pw, &scale,
                            file) != 10) return 2;
            const size_t nx = static_cast<size_t>(n) * c * h * w, nr = static_cast<size_t>(r) * 5;
            const std::vector<float> data = read_floats(file, nx + nr);
            void* x = upload(data.data(), nx, half);
            void* rois = upload(data.data() + nx, nr, false);
            void* out = nullptr;
            cudaMalloc(&out, static_cast<size_t>(r) * c * ph * pw * (half ? 2 : 4) + 1);
            const edge::roi_pool::RoiPoolShape s{n, c, h, w, r, ph, pw, scale};
            ok = check("launch", name, half ? edge::roi_pool::roi_pool_forward(static_cast<const __half*>(x),
                                                   static_cast<const float*>(rois), static_cast<__half*>(out), s, 0)
                                             : edge::roi_pool::roi_pool_forward(static_cast<const float*>(x),
                                                   static_cast<const float*>(rois), static_cast<float*>(out), s, 0));
            ok = check("sync", name, cudaDeviceSynchronize()) && ok;
            cudaFree(x), cudaFree(rois), cudaFree(out);
        } else if (std::strcmp(kind, "cell") == 0) {
            int n, cx, ch, h, w, k;
            if (std::fscanf(m, "%d %d %d %d %d %d %d %4095s", &half, &n, &cx, &ch, &h, &w, &k, file) != 8) return 2;
            const size_t nx = static_cast<size_t>(n) * cx * h * w, ns = static_cast<size_t>(n) * ch * h * w;
            const size_t nw = static_cast<size_t>(4) * ch * (cx + ch) * k * k, nb = static_cast<size_t>(4) * ch;
            const std::vector<float> d = read_floats(file, nx + 2 * ns + nw + nb);
            void* x = upload(d.data(), nx, half);
            void* hh = upload(d.data() + nx, ns, half);
            void* c = upload(d.data() + nx + ns, ns, false);
            void* wt = upload(d.data() + nx + 2 * ns, nw, half);
            void* b = upload(d.data() + nx + 2 * ns + nw, nb, half);
            void *ho = nullptr, *co = nullptr;
            cudaMalloc(&ho, ns * (half ? 2 : 4) + 1);
            cudaMalloc(&co, ns * 4 + 1);
            const edge::convlstm::ConvLstmShape s{n, cx, ch, h, w, k};
            cudaError_t e;
            if (half) {
                using T = __half;
                e = edge::convlstm::convlstm_forward(static_cast<const T*>(x), static_cast<const T*>(hh),
                                                     static_cast<const float*>(c), static_cast<const T*>(wt),
                                                     static_cast<const T*>(b), static_cast<T*>(ho),
                                                     static_cast<float*>(co), s, 0);
            } else {
                e = edge::convlstm::convlstm_forward(static_cast<const float*>(x), static_cast<const float*>(hh),
                                                     static_cast<const float*>(c), static_cast<const float*>(wt),
                                                     static_cast<const float*>(b), static_cast<float*>(ho),
                                                     static_cast<float*>(co), s, 0);
            }
            ok = check("launch", name, e);
            ok = check("sync", name, cudaDeviceSynchronize()) && ok;
            cudaFree(x), cudaFree(hh), cudaFree(c), cudaFree(wt), cudaFree(b), cudaFree(ho), cudaFree(co);
        } else {
            std::fprintf(stderr, "unknown case kind %s\n", kind);
            return 2;
        }
        ++cases;
        failures += ok ? 0 : 1;
        std::printf("%s %s %s\n", ok ? "ok" : "FAILED", kind, name);
    }
    std::fclose(m);
    std::printf("%d cases, %d failed\n", cases, failures);
    return failures ? 1 : 0;
}
