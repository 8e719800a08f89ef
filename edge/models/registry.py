"""Which PyTorch models exist and how to get their networks (reference side: imports torch).

The model contract (``ModelModule``): a model module (``edge.models.sint``, ``edge.models.two_in_one``, or
yours, named by its dotted path) provides ``build_<model>(weights=None) -> nn.Module``,
``networks(model) -> dict[str, NetworkSpec]`` and ``config(model) -> dict``. What the networks and the config
must hold for the runtime is ``edge.contract`` (``TrackerConfig``, ``ClassifierConfig``); ``check_model``
checks a module against it before anything is exported. Export, the benchmark and the PyTorch reference
engines (``torch_engines``) all go through this module.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Protocol

import torch
from torch import nn

from edge.runtime.base import Engines, TensorSpec

MODELS: dict[str, str] = {
    "tracker": "edge.models.sint",
    "classifier": "edge.models.two_in_one",
}


@dataclass
class NetworkSpec:
    """One exportable network: a module, example inputs in forward order, output names, dynamic axes.

    ``profile`` (optional) narrows TensorRT optimisation profiles: ``{input: {axis: (min, opt, max)}}``;
    without it a dynamic axis gets ``(1, example, example)``.
    """
    module: nn.Module
    inputs: dict[str, torch.Tensor]
    outputs: list[str]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    profile: dict[str, dict[int, tuple[int, int, int]]] | None = None


class ModelModule(Protocol):
    """What a model module provides (a ``typing.Protocol`` for documentation and type checkers; the builder
    is looked up as ``build_<model>`` or ``build_<module name>``, or the module's only ``build_*``)."""

    def networks(self, model: nn.Module) -> dict[str, NetworkSpec]:
        """The exportable networks by name (tracker: ``template``, ``search``; classifier: ``encoder``,
        ``step``), each with example inputs in forward order, output names and dynamic axes."""
        ...

    def config(self, model: nn.Module) -> dict:
        """JSON constants for the manifest, read by the runtime (``edge.contract``)."""
        ...


def check_model(name: str | ModuleType, model: nn.Module, specs: dict[str, NetworkSpec], cfg: dict) -> None:
    """The networks and config against the runtime's contract, before anything is exported: a network the
    runtime needs, an input it does not feed, a config field missing or out of range is one ``ContractError``
    line (the runtime's I/O: ``edge.contract.TRACKER_IO``; the classifier's encoder takes ``rgb``, ``flow``
    and its step ``features``, ``h``, ``c``)."""
    from edge.contract import ContractError, Manifest
    label = name if isinstance(name, str) else name.__name__
    where, hint = f"model {label}", "see the model contract in README's 'Bring your own model'"
    if not isinstance(specs, dict) or not specs or not all(isinstance(v, NetworkSpec) for v in specs.values()):
        raise ContractError(f"{where}: networks(model) must return a dict of edge.models.registry.NetworkSpec: {hint}")
    if not isinstance(cfg, dict):
        raise ContractError(f"{where}: config(model) must return a dict, got {type(cfg).__name__}: {hint}")
    nets = {}
    for net, spec in specs.items():
        if len(spec.outputs) != len(set(spec.outputs)) or not spec.outputs:
            raise ContractError(f"{where}: network {net!r} needs distinct output names: {hint}")
        nets[net] = network_manifest(spec)
    m = Manifest.from_dict({"model": label, "networks": nets, "config": cfg}, where, hint=hint)
    fed = ({"template": set(m.config.template.inputs), "search": set(m.config.search.inputs)}
           if m.kind == "tracker" else {"encoder": set(m.config.encoder_inputs), "step": {"features", "h", "c"}})
    for net, want in fed.items():
        extra = [t.name for t in m.networks[net].inputs if t.name not in want]
        if extra:
            raise ContractError(f"{where}: network {net!r} takes input(s) {extra} that the {m.kind} runtime "
                                f"does not feed (it feeds {', '.join(sorted(want))}): {hint}")


def model_module(name: str | ModuleType) -> ModuleType:
    """The Python module of a model: a name in ``MODELS``, an importable module path, or a module."""
    if isinstance(name, ModuleType):
        return name
    path = MODELS.get(name, name)
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as e:
        if name not in MODELS and e.name == path.split(".")[0]:
            raise ValueError(f"unknown model {name!r} (have: {', '.join(MODELS)}, or the import path of "
                             f"your model module)") from None
        raise ValueError(f"model {name!r}: module {path} cannot be imported ({e})") from None


def _builder(mod: ModuleType, name: str):
    short = mod.__name__.rsplit(".", 1)[-1]
    for attr in (f"build_{name}", f"build_{short}"):
        if callable(getattr(mod, attr, None)):
            return getattr(mod, attr)
    found = [a for a in dir(mod) if a.startswith("build_") and callable(getattr(mod, a))]
    if len(found) == 1:
        return getattr(mod, found[0])
    raise ValueError(f"model module {mod.__name__} has no build_<model>() function")


def build(name: str | ModuleType, weights: str | None = None) -> nn.Module:
    """Build the model in eval mode (weights loaded with weights_only=True by the model module)."""
    mod = model_module(name)
    model_name = name if isinstance(name, str) else mod.__name__
    return _builder(mod, model_name)(weights).eval()


def networks(name: str | ModuleType, model: nn.Module) -> dict[str, NetworkSpec]:
    return model_module(name).networks(model)


def config(name: str | ModuleType, model: nn.Module) -> dict:
    return dict(model_module(name).config(model))


def _np_dtype(t: torch.Tensor) -> str:
    return str(t.detach().numpy().dtype) if t.device.type == "cpu" else str(t.dtype).replace("torch.", "")


@torch.inference_mode()
def tensor_specs(spec: NetworkSpec, outputs: tuple | None = None
                 ) -> tuple[list[TensorSpec], list[TensorSpec], dict[str, list[int]]]:
    """Input/output ``TensorSpec`` (dynamic axes named) + the example output shapes (one forward run
    unless the example ``outputs`` are given)."""
    out = spec.module.eval()(*spec.inputs.values()) if outputs is None else outputs
    out = out if isinstance(out, (tuple, list)) else (out,)
    if len(out) != len(spec.outputs):
        raise ValueError(f"network returns {len(out)} outputs but names {spec.outputs}")

    def shape(name: str, t: torch.Tensor) -> tuple:
        dyn = spec.dynamic_axes.get(name, {})
        return tuple(dyn.get(i, int(d)) for i, d in enumerate(t.shape))

    ins = [TensorSpec(n, shape(n, t), _np_dtype(t)) for n, t in spec.inputs.items()]
    outs = [TensorSpec(n, shape(n, t), _np_dtype(t)) for n, t in zip(spec.outputs, out)]
    return ins, outs, {n: list(t.shape) for n, t in zip(spec.outputs, out)}


def network_manifest(spec: NetworkSpec, outputs: tuple | None = None) -> dict:
    """The manifest entry of one network (names, symbolic + example shapes, dtypes, profile)."""
    ins, outs, out_shapes = tensor_specs(spec, outputs)
    profile = {}
    for n, t in spec.inputs.items():
        axes = (spec.profile or {}).get(n, {})
        for i in spec.dynamic_axes.get(n, {}):
            lo, opt, hi = axes.get(i, (1, int(t.shape[i]), int(t.shape[i])))
            profile.setdefault(n, {})[str(i)] = [int(lo), int(opt), int(hi)]

    def entry(s: TensorSpec, example: list[int]) -> dict:
        return {"name": s.name, "shape": list(s.shape), "example_shape": example, "dtype": s.dtype}

    return {
        "inputs": [entry(s, list(spec.inputs[s.name].shape)) for s in ins],
        "outputs": [entry(s, out_shapes[s.name]) for s in outs],
        "dynamic_axes": {n: {str(i): a for i, a in ax.items()} for n, ax in spec.dynamic_axes.items()},
        "profile": profile,
    }


def torch_engines(name: str | ModuleType, weights: str | None = None, threads: int | None = None,
                  model: nn.Module | None = None) -> Engines:
    """The PyTorch reference behind the ``Engines`` interface (same manifest config as an export);
    ``model`` reuses an already built model instead of building it from ``weights``."""
    from edge.models.torch_engine import TorchEngine

    model = build(name, weights) if model is None else model.eval()
    specs = networks(name, model)
    engines, nets = {}, {}
    for net, spec in specs.items():
        ins, outs, _ = tensor_specs(spec)
        engines[net] = TorchEngine(net, spec.module, ins, outs, threads=threads)
        nets[net] = network_manifest(spec)
    manifest = {"model": name if isinstance(name, str) else name.__name__, "networks": nets,
                "config": config(name, model)}
    return Engines(engines, manifest, backend="pytorch", precision="fp32")
