"""bench/gpu_kernels.py (the prepared one-call GPU check) as far as it runs without a GPU: its cases are the
host tests' named cases, it parses its arguments, builds both launchers + the sanitizer driver for sm_90 with
nvcc (compile only), writes the driver's case files, and exits 2 with one line when there is no GPU."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.kernels import build_tools
from edge.kernels.cases import CELL_CASES, ROI_CASES

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_kernels.py"
sys.path.insert(0, str(ROOT / "bench"))
import gpu_kernels  # noqa: E402


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def test_cases_are_the_host_tests_cases():
    names = gpu_kernels.case_names()
    assert len(names) == len(set(names)) == 2 * len(ROI_CASES) + 1 + 2 * len(CELL_CASES)
    for c in ROI_CASES:
        assert {f"roi/{c.name}/fp32", f"roi/{c.name}/fp16"} <= set(names)
    for c in CELL_CASES:
        assert {f"cell/{c.name}/fp32", f"cell/{c.name}/fp16"} <= set(names)
    assert "roi/huge_boxes/fp32" in names
    assert [n for n, *_ in gpu_kernels.case_inputs()] == names
    for name, kind, dtype, arrays, _ in gpu_kernels.case_inputs():
        assert all(a.dtype == np.float32 for a in arrays)
        if kind == "cell" and dtype == "fp16":      # half-rounded I/O, float32 cell state
            x, _, c, *_ = arrays
            assert np.array_equal(x, x.astype(np.float16).astype(np.float32))
            assert not np.array_equal(c, c.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize("argv,message", [(["--compile-only"], "--compile-only needs --arch"),
                                          (["--arch", "sm_90"], "--arch must be digits")])
def test_argument_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        gpu_kernels.parse_args(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_no_gpu_is_one_line_and_exit_2(tmp_path, capsys):
    assert gpu_kernels.main(["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA GPU here" in err[0] and "--compile-only" in err[0]
    assert not (tmp_path / "gpu_kernels.json").exists()


@pytest.mark.slow
def test_compile_only_builds_everything_for_sm90(nvcc, tmp_path):
    proc = _run("--compile-only", "--arch", "90", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    rep = json.loads((tmp_path / "gpu_kernels.json").read_text())
    assert rep["status"] == "compiled" and rep["build"]["arch"] == "sm_90" and rep["cases"] == gpu_kernels.case_names()
    ptxas = rep["build"]["ptxas"]
    kernels = {r["kernel"].split("(")[0] for r in ptxas}
    assert len(kernels) == 8 and {r["arch"] for r in ptxas} == {"sm_90"}      # 2 RoiPool + 3 k x 2 ConvLSTM
    assert all(r["spill_stores"] == 0 and r["spill_loads"] == 0 and 0 < r["registers"] <= 255 for r in ptxas)
    lib, driver = Path(rep["build"]["library"]), Path(rep["build"]["driver"])
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True).stdout
    assert " T edge_roi_pool" in symbols and " T edge_convlstm" in symbols
    assert os.access(driver, os.X_OK) and b"sm_90" in lib.read_bytes()
    lines = Path(rep["manifest"]).read_text().splitlines()
    assert len(lines) == len(rep["cases"])
    for line, (name, kind, dtype, arrays, dims) in zip(lines, gpu_kernels.case_inputs()):
        f = line.split()
        assert f[:3] == [kind, name.replace("/", ":"), str(int(dtype == "fp16"))]
        assert [float(v) for v in f[3:-1]] == [float(v) for v in dims]
        assert np.array_equal(np.fromfile(f[-1], np.float32), np.concatenate([a.ravel() for a in arrays]))
    assert "| `void edge::convlstm::convlstm_kernel<float, float, 3>` | sm_90 |" in (tmp_path / "gpu_kernels.md").read_text()
    assert build_tools.find_nvcc() is not None
