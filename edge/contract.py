"""The typed contract between ``edge export``, ``edge build`` and the device runtime (torch-free).

What an export folder's ``model.json`` and an engine folder's ``fingerprint.json`` hold, as frozen
dataclasses parsed once at the file boundary (``Manifest.from_dict``, ``Fingerprint.from_dict``); the rest
of the runtime reads attributes, never guesses dictionary keys. Anything malformed is one ``ContractError``
line that names the fix (re-export / rebuild). Files from the previous release still parse.

This module imports nothing of ``edge`` but ``edge.errors``: every layer may use it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from edge.errors import UserError

EXPORT_FORMAT = "edge-export/1"
ENGINE_FORMAT = "edge-engine/1"

#: the network names that make a model of each kind (the one rule for "which model is this")
MODEL_NETWORKS = {"tracker": ("template", "search"), "classifier": ("encoder", "step")}
TASKS = {"tracker": "tracking", "classifier": "classification"}
NETWORK_KINDS = ("onnxruntime", "onnxruntime+numba", "tensorrt")
STAGE_KINDS = ("onnxruntime", "roi_pool")


class ContractError(UserError):
    """A manifest or fingerprint that does not hold what the runtime needs (one line, exit code 2)."""


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise ContractError(msg)


# -- tensors and networks -----------------------------------------------------------------------------
@dataclass(frozen=True)
class TensorSpec:
    """A named tensor: ``shape`` holds ints; a str or None marks a dynamic axis (e.g. ``"batch"``)."""
    name: str
    shape: tuple
    dtype: str = "float32"          # numpy dtype name

    @classmethod
    def from_dict(cls, d: Mapping, where: str) -> "TensorSpec":
        _need(isinstance(d, Mapping) and isinstance(d.get("name"), str) and isinstance(d.get("shape"), list),
              f"{where}: a tensor needs a name and a shape list, got {d!r:.80}")
        return cls(d["name"], tuple(d["shape"]), str(d.get("dtype", "float32")))

    def dim(self, axis: int) -> int | None:
        """The static size of ``axis``, or None when it is dynamic."""
        d = self.shape[axis]
        return int(d) if isinstance(d, int) and d >= 0 else None


@dataclass(frozen=True)
class NetworkManifest:
    """One exported network: its ONNX file, inputs and outputs in call order, TensorRT profile."""
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    file: str = ""
    sha256: str = ""
    custom_ops: tuple[str, ...] = ()
    profile: Mapping[str, Mapping[str, Sequence[int]]] = field(default_factory=dict)
    example_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, name: str, d: Mapping, where: str) -> "NetworkManifest":
        _need(isinstance(d, Mapping), f"{where}: network {name!r} is not an object")
        w = f"{where}: network {name!r}"
        _need(bool(d.get("inputs")) and bool(d.get("outputs")), f"{w} lists no inputs or outputs")
        ins = tuple(TensorSpec.from_dict(e, w) for e in d["inputs"])
        outs = tuple(TensorSpec.from_dict(e, w) for e in d["outputs"])
        ex = {e["name"]: tuple(e["example_shape"]) for e in [*d["inputs"], *d["outputs"]] if "example_shape" in e}
        return cls(name, ins, outs, str(d.get("file", f"{name}.onnx")), str(d.get("sha256", "")),
                   tuple(d.get("custom_ops") or ()), dict(d.get("profile") or {}), ex)

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((t for t in self.outputs if t.name == name), None)


# -- model configs the runtime reads ------------------------------------------------------------------
@dataclass(frozen=True)
class NetworkIO:
    """Which inputs a runtime feeds a network and which outputs it reads, by name and in order."""
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


TRACKER_IO = {"template": NetworkIO(("image", "box"), ("embedding",)),
              "search": NetworkIO(("image", "rois", "template"), ("scores", "embeddings"))}


@dataclass(frozen=True)
class TrackerConfig:
    """What ``edge.tracking`` needs from a tracker export.

    ``template``: image crop [1,3,S,S] + boxes [B,5] -> embedding [B,D]; ``search``: crop + candidate rois
    [R,5] + template [1,D] -> scores [R] (+ the candidates' embeddings [R,D], optional)."""
    crop_size: int
    template: NetworkIO = TRACKER_IO["template"]
    search: NetworkIO = TRACKER_IO["search"]
    num_candidates: int | None = None      # the count the search network was profiled for
    max_score: float | None = None         # best possible score (sum of cosines)
    params: Mapping[str, Any] = field(default_factory=dict)   # TrackerParams defaults of this model
    extra: Mapping[str, Any] = field(default_factory=dict)    # other documented constants

    @property
    def search_embeddings(self) -> str | None:
        """The search output holding the candidates' embeddings, if the network has one."""
        return self.search.outputs[1] if len(self.search.outputs) > 1 else None

    @classmethod
    def from_dict(cls, cfg: Mapping, nets: Mapping[str, NetworkManifest], where: str) -> "TrackerConfig":
        io = {}
        for net, default in TRACKER_IO.items():
            spec = (cfg.get("networks") or {}).get(net)
            if spec is None:       # exports before the config named the I/O: the defaults this network has
                spec = {"inputs": default.inputs,
                        "outputs": [o for o in default.outputs if nets[net].output(o) is not None]}
            io[net] = NetworkIO(tuple(spec.get("inputs") or ()), tuple(spec.get("outputs") or ()))
            _need(len(io[net].inputs) == len(default.inputs) and io[net].outputs,
                  f"{where}: tracker network {net!r} must take {len(default.inputs)} inputs "
                  f"({', '.join(default.inputs)}) and give at least one output")
            m = nets[net]
            missing = [n for n in io[net].inputs if m.input(n) is None] + \
                      [n for n in io[net].outputs if m.output(n) is None]
            _need(not missing, f"{where}: tracker network {net!r} has no tensor(s) {missing} named in its config")
        size = cfg.get("crop_size")
        if size is None:                   # fall back to the template's image input
            size = nets["template"].input(io["template"].inputs[0]).dim(-1)
        _need(isinstance(size, int) and size > 0, f"{where}: tracker crop_size must be a positive int, got {size!r}")
        params = cfg.get("tracker_params") or {}
        _need(isinstance(params, Mapping), f"{where}: tracker_params must be an object")
        known = {"crop_size", "networks", "num_candidates", "max_score", "tracker_params", "task", "model"}
        return cls(int(size), io["template"], io["search"], _opt_int(cfg.get("num_candidates")),
                   _opt_float(cfg.get("max_score")), dict(params),
                   {k: v for k, v in cfg.items() if k not in known})


@dataclass(frozen=True)
class ClassifierConfig:
    """What ``edge.classify`` needs from a classifier export.

    ``encoder``: rgb [B,3,S,S] (RGB 0..255) + flow [B,2,S,S] (DIS flow, clip(flow, -bound, bound) / bound)
    -> features [B,C,h,w] (+ attention); ``step``: features + h + c -> h_next, c_next, logits [B,K]. A window
    is ``window`` steps from zero state; one runs every ``stride`` frames. ``sample_fps``: the frame rate of the
    clips the model was trained on (the runtime feeds it frames at that rate, ``edge.classify.sampling``);
    None = every frame."""
    classes: tuple[str, ...]
    input_size: int
    window: int
    stride: int
    flow_preset: str = "ultrafast"
    flow_bound: float = 8.0
    use_flow: bool = True
    encoder_inputs: tuple[str, ...] = ("rgb", "flow")
    calibration: Mapping[str, Any] = field(default_factory=dict)   # temperature, open-set rule (edge.classify.decision)
    alarms: Mapping[str, Any] | None = None                        # per-class alarm rules (edge/data/alarms.json form)
    sample_fps: float | None = None                                # the model's clock; None: every frame
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, cfg: Mapping, nets: Mapping[str, NetworkManifest], where: str) -> "ClassifierConfig":
        enc, step = nets["encoder"], nets["step"]
        logits = step.output("logits")
        _need(logits is not None and step.output("h_next") is not None and step.output("c_next") is not None,
              f"{where}: classifier network 'step' must output h_next, c_next and logits")
        _need(all(step.input(n) is not None for n in ("features", "h", "c")),
              f"{where}: classifier network 'step' must take features, h and c")
        _need(enc.output("features") is not None, f"{where}: classifier network 'encoder' must output features")
        classes = tuple(cfg.get("classes") or ())
        k = logits.dim(-1)
        if not classes and k:
            classes = tuple(f"class_{i}" for i in range(k))
        _need(bool(classes) and all(isinstance(c, str) and c for c in classes),
              f"{where}: classifier config lists no classes")
        _need(k is None or k == len(classes), f"{where}: {len(classes)} classes but the step gives {k} logits")
        window = cfg.get("clip_len", cfg.get("window"))
        _need(isinstance(window, int) and window >= 1, f"{where}: classifier clip_len must be an int >= 1, got {window!r}")
        stride = cfg.get("stride") or max(1, window // 2)
        _need(isinstance(stride, int) and stride >= 1, f"{where}: classifier stride must be an int >= 1, got {stride!r}")
        size = cfg.get("input_size") or _spatial(enc)
        _need(isinstance(size, int) and size > 0, f"{where}: classifier input_size must be a positive int, got {size!r}")
        flow = cfg.get("flow") if isinstance(cfg.get("flow"), Mapping) else {}
        names = tuple(t.name for t in enc.inputs)
        _need(len(names) == 2, f"{where}: classifier encoder must take 2 inputs (rgb, flow), got {list(names)}")
        cal = cfg.get("calibration") or {}
        _need(isinstance(cal, Mapping), f"{where}: classifier calibration must be an object")
        alarms = cfg.get("alarms")
        _need(alarms is None or isinstance(alarms, Mapping), f"{where}: classifier alarms must be an object")
        fps = cfg.get("sample_fps")
        _need(fps is None or (isinstance(fps, (int, float)) and not isinstance(fps, bool) and 0 < fps <= 1000),
              f"{where}: classifier sample_fps must be a number of frames per second in (0, 1000], got {fps!r}")
        known = {"classes", "input_size", "clip_len", "window", "stride", "flow", "use_flow", "calibration",
                 "alarms", "sample_fps"}
        return cls(classes, int(size), int(window), int(stride), str(flow.get("preset", "ultrafast")),
                   float(flow.get("bound") or 8.0), bool(cfg.get("use_flow", True)),
                   names if set(names) != {"rgb", "flow"} else ("rgb", "flow"), dict(cal),
                   dict(alarms) if alarms is not None else None, float(fps) if fps is not None else None,
                   {k: v for k, v in cfg.items() if k not in known})


def _spatial(net: NetworkManifest) -> int | None:
    for t in net.inputs:
        if len(t.shape) == 4 and t.dim(-1):
            return t.dim(-1)
    return None


def _opt_int(v) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _opt_float(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def model_kind(networks: Sequence[str], model: str | None = None, task: str | None = None) -> str:
    """``tracker`` or ``classifier``: the manifest's model name, else its task, else its network names."""
    if model in MODEL_NETWORKS:
        return model
    for kind, t in TASKS.items():
        if task == t:
            return kind
    names = set(networks)
    for kind, nets in MODEL_NETWORKS.items():
        if set(nets) <= names:
            return kind
    raise ContractError(f"cannot tell which model has networks {sorted(names)}: a tracker needs "
                        f"template + search, a classifier encoder + step")


# -- the manifest -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Manifest:
    """``model.json``: written by ``edge export``, copied into every engine folder."""
    model: str                                   # manifest model name (tracker, classifier, or a module path)
    kind: str                                    # tracker | classifier
    networks: Mapping[str, NetworkManifest]
    config: TrackerConfig | ClassifierConfig
    module: str | None = None                    # the Python model module (reference side)
    weights: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def task(self) -> str:
        return TASKS[self.kind]

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "model.json",
                  hint: str = "re-export it with `edge export`") -> "Manifest":
        _need(isinstance(d, Mapping), f"{where} is not a JSON object: {hint}")
        fmt = d.get("format", EXPORT_FORMAT)
        _need(fmt == EXPORT_FORMAT, f"{where} has format {fmt!r}, expected {EXPORT_FORMAT!r}: {hint}")
        nets_raw = d.get("networks")
        _need(isinstance(nets_raw, Mapping) and bool(nets_raw), f"{where} lists no networks: {hint}")
        cfg = d.get("config") or {}
        _need(isinstance(cfg, Mapping), f"{where}: config is not an object: {hint}")
        try:
            nets = {n: NetworkManifest.from_dict(n, v, where) for n, v in nets_raw.items()}
            kind = model_kind(nets, d.get("model"), cfg.get("task"))
            missing = [n for n in MODEL_NETWORKS[kind] if n not in nets]
            _need(not missing, f"{where}: a {kind} needs network(s) {missing} (has {', '.join(nets)})")
            config = (TrackerConfig if kind == "tracker" else ClassifierConfig).from_dict(cfg, nets, where)
        except ContractError as e:
            raise ContractError(f"{e}: {hint}") from None
        except (TypeError, ValueError, KeyError) as e:
            raise ContractError(f"{where}: bad config ({type(e).__name__}: {e}): {hint}") from None
        return cls(str(d.get("model") or kind), kind, nets, config, d.get("module"), dict(d.get("weights") or {}),
                   dict(d))

    def to_dict(self) -> dict:
        return dict(self.raw)


# -- the fingerprint ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    """One step of a split CPU network: an onnxruntime graph segment or the host ROI pooling kernel."""
    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    file: str | None = None
    segment: str | None = None
    pooled_shape: tuple[int, int] | None = None
    spatial_scale: float | None = None

    @classmethod
    def from_dict(cls, d: Mapping, where: str) -> "Stage":
        _need(isinstance(d, Mapping) and d.get("kind") in STAGE_KINDS,
              f"{where}: stage kind must be one of {', '.join(STAGE_KINDS)}, got {d.get('kind') if isinstance(d, Mapping) else d!r}")
        if d["kind"] == "roi_pool":
            _need(len(d.get("inputs", ())) == 2 and len(d.get("pooled_shape", ())) == 2 and "spatial_scale" in d,
                  f"{where}: a roi_pool stage needs 2 inputs, pooled_shape and spatial_scale")
        else:
            _need(bool(d.get("segment")), f"{where}: an onnxruntime stage needs its segment name")
        return cls(d["kind"], tuple(d.get("inputs", ())), tuple(d.get("outputs", ())), d.get("file"),
                   d.get("segment"), tuple(d["pooled_shape"]) if d.get("pooled_shape") else None,
                   float(d["spatial_scale"]) if "spatial_scale" in d else None)


@dataclass(frozen=True)
class NetworkPlan:
    """How ``edge build`` built one network: backend form, precision, files + sha256, split stages."""
    kind: str
    precision: str
    files: Mapping[str, str]
    stages: tuple[Stage, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    probed_file: str | None = None      # the kept probed form of a tracker's search (``search_probed``)

    @classmethod
    def from_dict(cls, name: str, d: Mapping, fallback_precision: str, where: str) -> "NetworkPlan":
        w = f"{where}: network {name!r}"
        _need(isinstance(d, Mapping), f"{w} is not an object")
        _need(d.get("kind") in NETWORK_KINDS, f"{w} has kind {d.get('kind')!r} (one of {', '.join(NETWORK_KINDS)})")
        files = d.get("files")
        _need(isinstance(files, Mapping) and bool(files) and all(isinstance(v, str) for v in files.values()),
              f"{w} lists no files with their sha256")
        stages = tuple(Stage.from_dict(s, w) for s in d.get("stages") or ()) if d["kind"] == "onnxruntime+numba" else ()
        _need(d["kind"] != "onnxruntime+numba" or bool(stages), f"{w}: a split network needs its stages")
        _need(all(st.file in files for st in stages if st.kind == "onnxruntime"),
              f"{w}: every onnxruntime stage needs one of the network's files")
        probed = d.get("probed") or {}
        _need(isinstance(probed, Mapping), f"{w}: 'probed' is not an object")
        probed_file = probed.get("file") if probed.get("kept") else None
        _need(probed_file is None or probed_file in files, f"{w}: its probed form {probed_file!r} is not one of its files")
        _need(d["kind"] == "onnxruntime+numba" or len(files) == 1 + bool(probed_file),
              f"{w}: a {d['kind']} network has one file")
        return cls(d["kind"], str(d.get("precision") or fallback_precision), dict(files), stages, dict(d),
                   probed_file)


@dataclass(frozen=True)
class SessionPolicy:
    """CPU sessions: threads and how idle worker threads wait (``edge.runtime.ort_backend.SPIN_POLICIES``)."""
    threads: int | None = None
    spin: str = "during_run"


@dataclass(frozen=True)
class Fingerprint:
    """``fingerprint.json``: what an engine folder was built from, for which device, and how."""
    model: str | None
    target: str
    precision: str
    backend: str
    backend_version: str | None
    networks: Mapping[str, NetworkPlan]
    device: Mapping[str, Any] = field(default_factory=dict)
    plugin_library: Mapping[str, str] | None = None
    session: SessionPolicy = SessionPolicy()
    source_dir: str | None = None
    build_key: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def network_precisions(self) -> str:
        """What the networks were built as, e.g. ``fp32`` or ``fp32+int8`` (int8 kept where it pays)."""
        return "+".join(sorted({n.precision for n in self.networks.values()} or {self.precision}))

    @classmethod
    def from_dict(cls, d: Mapping, where: str, hint: str) -> "Fingerprint":
        _need(isinstance(d, Mapping), f"{where} is not a JSON object: {hint}")
        _need(d.get("format") == ENGINE_FORMAT,
              f"{where} has format {d.get('format')!r}, expected {ENGINE_FORMAT!r}: {hint}")
        for key in ("target", "precision", "backend"):
            _need(isinstance(d.get(key), str) and d[key], f"{where} has no {key}: {hint}")
        nets = d.get("networks")
        _need(isinstance(nets, Mapping) and bool(nets), f"{where} lists no networks: {hint}")
        try:
            plans = {n: NetworkPlan.from_dict(n, e, d["precision"], where) for n, e in nets.items()}
        except ContractError as e:
            raise ContractError(f"{e}: {hint}") from None
        sess = d.get("session") or {}
        spin = sess.get("spin") or ("always" if sess.get("allow_spinning") else "never")  # bool before 0.1
        threads = sess.get("intra_op_num_threads")
        plugin = d.get("plugin_library")
        _need(plugin is None or (isinstance(plugin, Mapping) and {"path", "sha256"} <= set(plugin)),
              f"{where}: plugin_library needs path and sha256: {hint}")
        return cls(d.get("model"), d["target"], d["precision"], d["backend"], d.get("backend_version"), plans,
                   dict(d.get("device") or {}), dict(plugin) if plugin else None,
                   SessionPolicy(int(threads) if isinstance(threads, int) else None, str(spin)),
                   d.get("source_dir"), d.get("build_key"), dict(d))
