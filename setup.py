"""edge: PyTorch video models to Jetson-class devices.

Everything installs under one import namespace: ``edge`` (device runtime + CLI),
``edge.kernels`` (custom ops), ``edge.export`` and ``edge.calibration``.
"""
import os

from setuptools import find_packages, setup

# source folder -> import prefix
ROOTS = {"edge": "edge", "kernels": "edge.kernels", "export": "edge.export",
         "calibration": "edge.calibration"}


def _packages():
    pkgs, dirs = [], {}
    for folder, prefix in ROOTS.items():
        dirs[prefix] = folder
        pkgs.append(prefix)
        for sub in find_packages(folder):
            pkgs.append(f"{prefix}.{sub}")
            dirs[f"{prefix}.{sub}"] = f"{folder}/" + sub.replace(".", "/")
    return pkgs, dirs


PACKAGES, PACKAGE_DIR = _packages()

# OpenCV: the plain and the contrib headless wheels ship the same `cv2` module, so an environment holds exactly
# one. The device runtime takes the plain one (smaller); `make venv` (workstation, tests, benchmarks) sets
# EDGE_OPENCV=opencv-contrib-python-headless for the CSRT/KCF anchor rows of the tracker benchmark.
OPENCV_WHEELS = ("opencv-python-headless", "opencv-contrib-python-headless")
OPENCV = os.environ.get("EDGE_OPENCV", OPENCV_WHEELS[0])
if OPENCV not in OPENCV_WHEELS:
    raise SystemExit(f"EDGE_OPENCV={OPENCV!r}: choose one of {', '.join(OPENCV_WHEELS)}")

# The device runtime: what a Jetson needs. No torch.
RUNTIME = [
    "numpy>=1.26,<3",
    "onnxruntime>=1.20,<2",
    f"{OPENCV}>=4.9",
    "numba>=0.60",
    "tqdm>=4.66",
    "threadpoolctl>=3.1",           # numpy's BLAS on one thread while the runtime's loops run (edge.runtime.blas)
    "onnx>=1.17,<2",                # `edge build` on the device edits graphs (ROI split, plugin prep, fp16)
]
# Workstation side: reference models, export, training, calibration.
REFERENCE = [
    "torch==2.13.0",
    "onnx>=1.17,<2",
    "scikit-image>=0.24",
    "matplotlib>=3.8",
]
# TensorRT comes from pip only off the Jetson: on a Jetson (aarch64, JetPack) TensorRT and its Python
# bindings are JetPack's (apt: python3-libnvinfer), matched to its CUDA and driver; a pip wheel there would
# shadow them with a different version than the engines are built with. (SBSA aarch64 servers: install the
# tensorrt wheel by hand.)
OFF_JETSON = "platform_machine != 'aarch64'"
# Client of `edge serve` (`edge run --remote grpc://...`). The server side (nvidia-pytriton: tritonserver and
# its Python backend, numpy<2) lives in its own venv: `make serve-venv`.
SERVE = ["tritonclient[grpc]>=2.40"]
EXTRAS = {
    "reference": REFERENCE,
    "tensorrt": [f"tensorrt>=10.3; {OFF_JETSON}", "pycuda>=2024.1"],
    "serve": SERVE,
    # tensorrt_lean: the dev-time API and plugin-registration checks only (the runtime never imports it)
    "dev": REFERENCE + SERVE + ["pytest>=8", "pytest-timeout>=2.3", f"tensorrt_lean>=10.3; {OFF_JETSON}",
                                "import-linter>=2.1"],
}

setup(
    name="edge",
    version="0.2.0",
    description="Take trained PyTorch video models to Jetson-class devices",
    python_requires=">=3.10",
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={"edge.kernels": ["*/*.cuh", "*/*.cu", "*/*.h", "*/*.cpp", "*/*.hpp",
                                   "*/plugin/*.cpp", "*/plugin/*.h", "CMakeLists.txt", "common/*"],
                  "edge": ["tolerances.json", "data/*.json", "targets/*.json", "weights/*"]},
    install_requires=RUNTIME,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["edge=edge.cli:main"]},
)
