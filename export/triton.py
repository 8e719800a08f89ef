"""``edge export-triton``: a Triton model repository for a GPU server from engine folders (torch-free).

Layout: ``OUT/models/`` is the model repository, ``OUT/plugins/`` the TensorRT plugin library (outside
the repository: Triton would take any folder there for a model), ``OUT/serve.sh`` starts ``tritonserver``.
Per network one model ``<model>_<network>`` with ``config.pbtxt`` (the manifest's names, dtypes, shapes and
optimisation profiles) and ``1/model.{plan,onnx}``:

- ``tensorrt_plan``: the engine built by ``edge build --target <gpu>`` (tied to that GPU and TensorRT
  version, as everywhere); the plugin library is copied to ``plugins/`` and the server must load it
  (``--backend-config=tensorrt,plugins=...``, as ``serve.sh`` does).
- ``onnxruntime``: the ONNX graph the engine was built from (custom ops as model-local functions, which
  onnxruntime inlines), or the engine's single optimised graph when the source is gone.

Networks with a batch axis get dynamic batching. The ConvLSTM ``step`` gets a **sequence batcher with
implicit state**: ``h``/``c`` stay on the server per sequence id (zeroed on sequence start), so a client
sends only ``features`` and reads ``logits`` (``--step-state explicit`` keeps them as plain tensors, the
protocol of ``edge run --remote``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from edge.errors import UserError
from edge.fileio import atomic_copy, atomic_write_bytes, sha256_file
from edge.runtime.triton_config import (PARAM_BACKEND, PARAM_PRECISION, batch_axis, dims, edge_parameters,
                               manifest_model, model_name, profile_max_batch, tensor_entries, to_pbtxt,
                               triton_type)
from edge.serve.repository import network_config, read_engine_dir

BACKENDS = ("auto", "onnxruntime", "tensorrt")
#: recurrent networks: (state input, state output) pairs by manifest names
STATE_PAIRS = {"step": (("h", "h_next"), ("c", "c_next"))}


@dataclass(frozen=True)
class Exported:
    name: str
    backend: str
    path: Path
    batched: bool
    stateful: bool


def _onnx_source(fp: dict, engine_dir: Path, net: str) -> Path:
    """The ONNX file for the onnxruntime backend: the build's source when it is unchanged, else a single
    optimised graph of the engine folder."""
    entry = fp["networks"][net]
    src = Path(fp.get("source_dir") or "") / (entry.get("source") or f"{net}.onnx")
    if src.is_file() and entry.get("source_sha256") in (None, sha256_file(src)):
        return src
    probed = (entry.get("probed") or {}).get("file")
    files = [f for f in entry.get("files", {}) if f != probed]
    if entry.get("kind") == "onnxruntime" and len(files) == 1:
        return engine_dir / files[0]
    raise UserError(f"{engine_dir}: network {net} was built as {entry.get('kind')} ({', '.join(files)}) and its "
                    f"source {src} is gone or changed: export-triton needs one ONNX graph (rebuild, or keep the export)")


def state_pairs(net_name: str, net: dict) -> list[tuple[dict, dict]]:
    """(input spec, output spec) per recurrent state of a network, from the manifest."""
    ins = {s["name"]: s for s in net["inputs"]}
    outs = {s["name"]: s for s in net["outputs"]}
    return [(ins[i], outs[o]) for i, o in STATE_PAIRS.get(net_name, ()) if i in ins and o in outs]


def sequence_batching(pairs, batched: bool, idle_us: int, queue_delay_us: int) -> dict:
    states = []
    for i, o in pairs:
        d = dims(i["shape"], batched)
        if any(x < 0 for x in d):
            raise UserError(f"state {i['name']} has a dynamic axis {i['shape']}: implicit state needs fixed dims")
        states.append({"input_name": i["name"], "output_name": o["name"], "data_type": triton_type(i["dtype"]),
                       "dims": d, "initial_state": {"data_type": triton_type(i["dtype"]), "dims": d,
                                                    "zero_data": True, "name": f"{i['name']}_zero"}})
    seq = {"max_sequence_idle_microseconds": int(idle_us)}
    if batched:
        seq["oldest"] = {"max_candidate_sequences": 64, "max_queue_delay_microseconds": int(queue_delay_us)}
    else:
        seq["direct"] = {}
    seq["state"] = states
    return seq


def export_triton(engine_dirs: Sequence[str | Path], out: str | Path, *, backend: str = "auto",
                  prefixes: Sequence[str] = (), max_batch: int = 8, queue_delay_us: int = 100,
                  instances: int = 1, kind: str = "gpu", step_state: str = "implicit",
                  sequence_idle_us: int = 5_000_000) -> list[Exported]:
    """Write the repository under ``out``; returns what was written."""
    if backend not in BACKENDS:
        raise UserError(f"--backend must be one of {', '.join(BACKENDS)}")
    if step_state not in ("implicit", "explicit"):
        raise UserError("--step-state must be implicit or explicit")
    if len(prefixes) > len(engine_dirs):
        raise UserError(f"{len(prefixes)} --prefix for {len(engine_dirs)} engine folders")
    out = Path(out)
    repo = out / "models"
    done: list[Exported] = []
    plugins: list[Path] = []
    for i, d in enumerate(engine_dirs):
        d = Path(d).resolve()
        fp, manifest = read_engine_dir(d)
        base = (prefixes[i] if i < len(prefixes) else None) or manifest_model(manifest, d)
        built = fp.get("backend")
        chosen = ("tensorrt" if built == "tensorrt" else "onnxruntime") if backend == "auto" else backend
        if chosen == "tensorrt" and built != "tensorrt":
            raise UserError(f"{d} holds {built} engines: tensorrt_plan needs `edge build --target <gpu>` engines "
                            "(or use --backend onnxruntime)")
        lib = fp.get("plugin_library") if chosen == "tensorrt" else None
        if lib:
            plug = Path(lib["path"])
            if not plug.is_file() or sha256_file(plug) != lib.get("sha256"):
                raise UserError(f"plugin library {plug} of {d} is missing or changed: rebuild it and the engines")
            dst = out / "plugins" / plug.name
            if dst not in plugins:
                atomic_copy(plug, dst)
                plugins.append(dst)
        for net_name, net in manifest["networks"].items():
            name = model_name(base, net_name)
            if any(e.name == name for e in done):
                raise UserError(f"two engine folders export {name}: give each a --prefix")
            batched = batch_axis(net) is not None
            mb = max_batch
            if chosen == "tensorrt" and batched:
                mb = profile_max_batch(net, batch_axis(net)) or 1   # the engine cannot exceed its profile
            pairs = state_pairs(net_name, net) if step_state == "implicit" else []
            skip = {p for pair in pairs for p in (pair[0]["name"], pair[1]["name"])}
            extra = {PARAM_BACKEND: chosen, PARAM_PRECISION: (fp["networks"].get(net_name) or {}).get("precision"),
                     "edge_profile": json.dumps(net.get("profile") or {}, sort_keys=True),
                     "edge_step_state": "implicit" if pairs else None}
            cfg = network_config(name, net, backend=chosen if chosen == "onnxruntime" else "tensorrt",
                                 max_batch=mb if batched else 0, queue_delay_us=queue_delay_us, instances=instances,
                                 kind="KIND_GPU" if kind == "gpu" else "KIND_CPU",
                                 params=edge_parameters(manifest, net_name, base, **extra))
            cfg["input"] = tensor_entries(net["inputs"], cfg["max_batch_size"] > 0, skip)
            cfg["output"] = tensor_entries(net["outputs"], cfg["max_batch_size"] > 0, skip)
            if chosen == "tensorrt":
                cfg["platform"] = "tensorrt_plan"
                cfg["default_model_filename"] = "model.plan"
                cfg["instance_group"][0]["profile"] = ["0"]
            else:
                cfg["default_model_filename"] = "model.onnx"
            if pairs:
                cfg.pop("dynamic_batching", None)       # the sequence batcher batches across sequences
                cfg["sequence_batching"] = sequence_batching(pairs, cfg["max_batch_size"] > 0, sequence_idle_us,
                                                             queue_delay_us)
            cfg = _ordered(cfg)
            if chosen == "tensorrt":
                (file,) = fp["networks"][net_name]["files"]
                atomic_copy(d / file, repo / name / "1" / "model.plan")
            else:
                atomic_copy(_onnx_source(fp, d, net_name), repo / name / "1" / "model.onnx")
            atomic_write_bytes(repo / name / "config.pbtxt", (to_pbtxt(cfg) + "\n").encode())
            done.append(Exported(name, chosen, repo / name, cfg["max_batch_size"] > 0, bool(pairs)))
    _write_launcher(out, plugins)
    return done


def _ordered(cfg: dict) -> dict:
    """Fields in the order of model_config.proto (readable diffs; parsing does not care)."""
    order = ("name", "platform", "backend", "max_batch_size", "input", "output", "dynamic_batching",
             "sequence_batching", "instance_group", "default_model_filename", "parameters")
    return {k: cfg[k] for k in order if k in cfg} | {k: v for k, v in cfg.items() if k not in order}


def _write_launcher(out: Path, plugins: list[Path]) -> None:
    args = ["tritonserver", "--model-repository=\"$here/models\""]
    if plugins:
        libs = ";".join(f"$here/plugins/{p.name}" for p in plugins)
        args.append(f"--backend-config=tensorrt,plugins=\"{libs}\"")
    script = ("#!/bin/sh\n# Generated by edge export-triton: start Triton on this repository"
              + (" (loads the TensorRT plugin library first)" if plugins else "") + ".\n"
              "here=$(cd \"$(dirname \"$0\")\" && pwd)\nexec " + " ".join(args) + " \"$@\"\n")
    path = atomic_write_bytes(out / "serve.sh", script.encode())
    path.chmod(0o755)


def describe(done: list[Exported]) -> list[str]:
    return [f"{e.name}: {e.backend}" + (", dynamic batching" if e.batched and not e.stateful else "")
            + (", sequence batcher with implicit state" if e.stateful else "") for e in done]


__all__ = ["export_triton", "describe", "state_pairs"]
