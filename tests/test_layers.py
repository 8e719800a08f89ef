"""The layer contract (``.importlinter``): import-linter on the installed module layout (``edge``,
``edge.kernels`` <- kernels/, ``edge.export`` <- export/, ``edge.calibration`` <- calibration/), and a
deliberate violation that the same check must catch."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"edge": "", "kernels": "kernels", "export": "export", "calibration": "calibration"}
LINT = Path(sys.executable).with_name("lint-imports")


def _layout(dst: Path) -> Path:
    """The package as it is installed (setup.py's folder -> namespace map), as plain files under dst/edge."""
    for folder, sub in SOURCES.items():
        for f in (ROOT / folder).rglob("*.py"):
            rel = f.relative_to(ROOT / folder)
            if folder == "edge" and rel.parts[0] in SOURCES:
                continue
            out = dst / "edge" / sub / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, out)
    return dst


def _lint(tree: Path) -> subprocess.CompletedProcess:
    if not LINT.exists():
        pytest.skip("import-linter not installed (pip install -e '.[dev]')")
    return subprocess.run([str(LINT), "--config", str(ROOT / ".importlinter"), "--no-cache"], cwd=tree,
                          capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(tree), "PATH": ""})


def test_layers_and_torch_free_device_side(tmp_path):
    res = _lint(_layout(tmp_path))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken" in res.stdout


@pytest.mark.parametrize("module,line,contract", [
    ("runtime/base.py", "from edge.stream import pipeline", "data flows one way"),
    ("tracking/geometry.py", "import torch", "never imports torch"),
])
def test_a_violation_is_caught(tmp_path, module, line, contract):
    tree = _layout(tmp_path)
    f = tree / "edge" / module
    f.write_text(f.read_text() + f"\n\ndef _late():\n    {line}\n")
    res = _lint(tree)
    assert res.returncode != 0 and "BROKEN" in res.stdout
    broken = res.stdout[res.stdout.index("Broken contracts"):]
    assert contract in broken, broken
