"""edge: PyTorch video models to Jetson-class devices: export, calibrate, build, run, bench.

The public API (``edge.api``) is importable from here without importing torch or onnxruntime::

    import edge
    exp = edge.export("tracker", "out/tracker")
    eng = edge.build(exp.path, target="cpu", out="engines/tracker")
    summary = edge.run("clip.mp4", tracker=eng, init_box=(250, 90, 60, 110))

Nothing imported from ``edge`` at start-up imports torch; the reference side loads when called.
"""
__version__ = "0.2.0"

_API = ("export", "calibrate", "build", "run", "bench", "frames", "Tracker", "Classifier", "Export",
        "Calibration", "EngineSet", "BenchReport", "Label")
__all__ = [*_API, "UserError", "__version__"]


def __getattr__(name: str):
    if name in ("export", "bench", "ops"):  # export, bench: packages that are also the API's functions
        import importlib                    # (edge._callable); ops: our ops for PyTorch models (torch)
        return importlib.import_module(f"edge.{name}")
    if name in _API:
        from edge import api
        return getattr(api, name)
    if name == "UserError":
        from edge.errors import UserError
        return UserError
    raise AttributeError(f"module 'edge' has no attribute {name!r}")
